"""Damaged bags (issue 19): a file cut in the middle of a chunk, a chunk with a wrong CRC, a
missing metadata.yaml, a damaged .db3, an unknown message type and a topic that is not there
each give one clear error naming the bag and the problem (``sr3d-bag`` exits 1, no traceback),
and ``extract`` never leaves an output folder behind."""

from __future__ import annotations

import shutil

import pytest

from sr3d_ros.cli.bag import main
from sr3d_ros.ros import bag as B
from sr3d_ros.ros.bag.integrity import _chunks

START = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def good(data_root, tmp_path_factory):
    """{storage: bag} of the moving-sensor ScanNet scan (3 frames, one cloud per chunk)."""
    root = tmp_path_factory.mktemp("good")
    out = {}
    for storage in ("mcap", "sqlite3"):
        out[storage] = root / storage
        B.build_scannet_sensor_bag(out[storage], data_root, 3, storage=storage, start_ns=START)
    return out


def _copy(good, storage, tmp_path):
    dst = tmp_path / f"damaged_{storage}"
    shutil.copytree(good[storage], dst)
    return dst


def _extract(bag, out, capsys, *extra):
    code = main(["extract", str(bag), "--out", str(out), "--points-topic", "/points", "-q", *extra])
    return code, capsys.readouterr().err


def _assert_no_output(out):
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def _one_line(err):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines and "Traceback" not in err, err
    return lines[0]


def test_mcap_cut_mid_chunk(good, tmp_path, capsys):
    bag = _copy(good, "mcap", tmp_path)
    (mcap,) = bag.glob("*.mcap")
    data = mcap.read_bytes()
    chunks = _chunks(data, mcap)
    assert len(chunks) >= 3
    _, _, rec, rlen, _, _ = chunks[1]
    mcap.write_bytes(data[: rec + rlen // 2])  # cut inside the second chunk's messages
    out = tmp_path / "out"
    code, err = _extract(bag, out, capsys)
    line = _one_line(err)
    assert code == 1 and str(bag) in line and "damaged bag" in line and "truncated" in line
    _assert_no_output(out)
    assert main(["info", str(bag)]) == 1
    assert "truncated" in capsys.readouterr().err
    with pytest.raises(B.BagReadError, match=str(bag)):
        list(B.read_bag(bag))


def test_mcap_wrong_crc(good, tmp_path, capsys):
    bag = _copy(good, "mcap", tmp_path)
    (mcap,) = bag.glob("*.mcap")
    data = bytearray(mcap.read_bytes())
    pos, _, rec, rlen, _, _ = _chunks(data, mcap)[2]
    data[rec + rlen // 3] ^= 0x5A
    mcap.write_bytes(bytes(data))
    out = tmp_path / "out"
    code, err = _extract(bag, out, capsys)
    line = _one_line(err)
    assert code == 1 and str(bag) in line and f"chunk 2 at byte {pos} is corrupt" in line
    _assert_no_output(out)
    # reading without the up-front check meets the chunk and says so, naming the bag
    with pytest.raises(B.BagReadError, match=f"{bag}: cannot read the bag: .*checksum"):
        list(B.read_bag(bag, topics=["/points"], deserialize=False))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_missing_metadata(good, storage, tmp_path, capsys):
    bag = _copy(good, storage, tmp_path)
    (bag / "metadata.yaml").unlink()
    out = tmp_path / "out"
    code, err = _extract(bag, out, capsys)
    assert code == 1 and str(bag) in _one_line(err) and "no metadata.yaml" in err
    _assert_no_output(out)
    assert main(["info", str(bag)]) == 1
    assert "no metadata.yaml" in capsys.readouterr().err


def test_db3_cut_and_damaged(good, tmp_path, capsys):
    bag = _copy(good, "sqlite3", tmp_path)
    (db,) = bag.glob("*.db3")
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])  # truncated
    out = tmp_path / "out"
    code, err = _extract(bag, out, capsys)
    line = _one_line(err)
    assert code == 1 and str(bag) in line and "damaged" in line and db.name in line
    _assert_no_output(out)

    # garbage over the file header (SQLite keeps no checksums: damage inside a message's bytes
    # cannot be detected, only damage to the file's structure)
    db.write_bytes(b"\xff" * 100 + data[100:])
    code, err = _extract(bag, out, capsys)
    assert code == 1 and str(bag) in _one_line(err) and "damaged" in err
    _assert_no_output(out)


def test_unknown_message_type_and_missing_topic(data_root, tmp_path, capsys):
    """A bag with a topic of a type we do not know: info lists it, reading it is one clear
    error, and extract refuses it as the wrong type before writing anything."""
    from rosbags.typesys import get_types_from_msg

    from sr3d_ros.ros.bag.builders import bag_writer

    ts = B.make_typestore()
    store = type(ts)()  # a private typestore holding the unknown type only
    store.register(get_types_from_msg("int32 answer", "acme_msgs/msg/Thing"))
    bag = tmp_path / "unknown"
    with bag_writer(bag) as w, w:
        c = w.add_connection("/thing", "acme_msgs/msg/Thing", typestore=store)
        msg = store.types["acme_msgs/msg/Thing"](answer=42)
        w.write(c, START, store.serialize_cdr(msg, "acme_msgs/msg/Thing"))
    assert main(["info", str(bag)]) == 0
    assert '"type": "acme_msgs/msg/Thing"' in capsys.readouterr().out
    with pytest.raises(B.BagReadError, match=f"{bag}: topic /thing has the unknown message type"):
        list(B.read_bag(bag))
    out = tmp_path / "out"
    code, err = _extract(bag, out, capsys, "--gt-topic", "/thing")
    assert code == 1 and str(bag) in _one_line(err) and "no topic /points" in err
    code = main(["extract", str(bag), "--out", str(out), "--points-topic", "/thing", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "/thing has type acme_msgs/msg/Thing" in _one_line(err)
    _assert_no_output(out)
