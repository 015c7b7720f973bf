"""Sparse tensor construction, validation, batching, lookups, voxelization and empty inputs.

The tests that exercise a device run on every available one (``device`` fixture, conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sr3d_ros.sparse import (
    CoordinatePacker,
    SparseBatchNorm,
    SparseConv3d,
    SparseConvTranspose3d,
    SparseGenerativeConvTranspose3d,
    SparseGlobalAvgPool,
    SparseGlobalMaxPool,
    SparseMaxPool3d,
    SparseReLU,
    SparseTensor,
    conv_strategy,
    kernel_offsets,
    prune,
    sparse_collate,
    sparse_conv,
    voxelize,
)


def test_kernel_offsets_me_order() -> None:
    offs = kernel_offsets(3)
    assert offs.shape == (27, 3)
    assert offs[0].tolist() == [-1, -1, -1]
    assert offs[1].tolist() == [0, -1, -1]  # x varies fastest
    assert offs[3].tolist() == [-1, 0, -1]
    assert offs[9].tolist() == [-1, -1, 0]
    assert offs[13].tolist() == [0, 0, 0]
    assert kernel_offsets(2).tolist()[:3] == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert kernel_offsets(1).tolist() == [[0, 0, 0]]


def test_bad_inputs_raise_clear_errors() -> None:
    feats = torch.zeros(3, 2)
    with pytest.raises(TypeError, match="integer"):
        SparseTensor(feats, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        SparseTensor(feats, torch.zeros(3, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="feature count"):
        SparseTensor(torch.zeros(2, 2), torch.zeros(3, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="duplicate"):
        SparseTensor(feats, torch.zeros(3, 4, dtype=torch.int32))
    with pytest.raises(TypeError, match="floating"):
        SparseTensor(torch.zeros(1, 2, dtype=torch.int64), torch.zeros(1, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="batch"):
        SparseTensor(torch.zeros(1, 2), torch.tensor([[-1, 0, 0, 0]], dtype=torch.int32))
    with pytest.raises(ValueError, match="too large for the key packing"):
        SparseTensor(
            torch.zeros(2, 1),
            torch.tensor([[0, -(2**30), 0, 0], [0, 2**30, 2**30, 2**30]], dtype=torch.int32),
        )
    with pytest.raises(ValueError, match="multiples of tensor_stride"):
        SparseTensor(
            torch.zeros(1, 1), torch.tensor([[0, 1, 0, 0]], dtype=torch.int32), tensor_stride=2
        )
    with pytest.raises(ValueError, match="voxel_size"):
        voxelize(torch.zeros(4, 3), -0.1)
    with pytest.raises(ValueError, match="voxel_size"):
        voxelize(torch.zeros(4, 3), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        voxelize(torch.tensor([[0.0, float("nan"), 0.0]]), 0.1)
    x = SparseTensor(torch.zeros(1, 2), torch.zeros(1, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="channels"):
        SparseConv3d(3, 4)(x)
    with pytest.raises(ValueError, match="divide"):
        SparseGenerativeConvTranspose3d(2, 2)(x)


def test_dtype_device_and_type_errors() -> None:
    x = SparseTensor(
        torch.randn(3, 2),
        torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.int32),
    )
    kmap = x.manager.conv_kernel_map(x.set_id, x.set_id, 3)
    # functional sparse_conv: dtype and device checked before any matmul
    with pytest.raises(TypeError, match="dtype"):
        sparse_conv(x.features, torch.zeros(27, 2, 4, dtype=torch.float64), kmap)
    with pytest.raises(TypeError, match="floating"):
        sparse_conv(x.features, torch.zeros(27, 2, 4, dtype=torch.int64), kmap)
    with pytest.raises(TypeError, match="floating"):
        sparse_conv(x.features.long(), torch.zeros(27, 2, 4), kmap)
    with pytest.raises(ValueError, match="features on cpu but weight on meta"):
        sparse_conv(x.features, torch.zeros(27, 2, 4, device="meta"), kmap)
    with pytest.raises(ValueError, match="features on meta but the kernel map on cpu"):
        sparse_conv(x.features.to("meta"), torch.zeros(27, 2, 4, device="meta"), kmap)
    # modules: float64 layer on a float32 tensor, for the gather path and the 1x1 matrix path
    with pytest.raises(TypeError, match="dtype"):
        SparseConv3d(2, 4, 3).double()(x)
    with pytest.raises(TypeError, match="dtype"):
        SparseConv3d(2, 4, 1).double()(x)
    with pytest.raises(TypeError, match="dtype"):
        SparseGenerativeConvTranspose3d(2, 4, 2, 1).double()(x)
    with pytest.raises(ValueError, match="features on cpu but weight on meta"):
        SparseConv3d(2, 4, 1).to("meta")(x)
    with pytest.raises(TypeError, match="target must be a SparseTensor"):
        SparseConvTranspose3d(2, 2, 2, 2)(SparseConv3d(2, 2, 2, 2)(x), x.features)
    # every module type-checks its input
    for module in (
        SparseMaxPool3d(2, 2),
        SparseGlobalAvgPool(),
        SparseGlobalMaxPool(),
        SparseBatchNorm(2),
        SparseReLU(),
        SparseConv3d(2, 2),
    ):
        with pytest.raises(TypeError, match="expects a SparseTensor"):
            module(x.features)
    with pytest.raises(TypeError, match="expects a SparseTensor"):
        prune(x.features, torch.ones(3, dtype=torch.bool))
    # voxelize: features must be floating (N, C) on the points' device
    pts = torch.rand(5, 3)
    with pytest.raises(TypeError, match="floating"):
        voxelize(pts, 0.1, features=torch.ones(5, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="floating"):
        voxelize(pts, 0.1, features=np.ones((5, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        voxelize(pts, 0.1, features=torch.ones(5))
    with pytest.raises(ValueError, match="features on meta but points on cpu"):
        voxelize(pts, 0.1, features=torch.ones(5, 2, device="meta"))
    with pytest.raises(TypeError, match="floating"):
        voxelize(pts.long(), 0.1)
    assert (
        voxelize(pts, 0.1, features=torch.ones(5, 2, dtype=torch.float64)).features.dtype
        == torch.float64
    )


def test_empty_tensor_flows_through_every_op(device: torch.device) -> None:
    feats = torch.zeros(0, 4, device=device, requires_grad=True)
    x = SparseTensor(feats, torch.zeros(0, 4, dtype=torch.int32, device=device))
    assert len(x) == 0 and x.batch_size == 0
    conv1, conv2 = SparseConv3d(4, 8, 3, 2).to(device), SparseConv3d(8, 8, 3).to(device)
    y = SparseReLU()(SparseBatchNorm(8).to(device)(conv1(x)))
    assert y.features.shape == (0, 8)
    y = SparseMaxPool3d(2, 2)(conv2(y))
    assert y.features.shape == (0, 8) and y.tensor_stride == 4
    z = SparseGenerativeConvTranspose3d(8, 4).to(device)(y)
    assert z.features.shape == (0, 4) and z.tensor_stride == 2 and z.device == device
    assert prune(z, torch.zeros(0, dtype=torch.bool, device=device)).features.shape == (0, 4)
    assert SparseGlobalAvgPool()(z).features.shape == (0, 4)
    v = voxelize(torch.zeros(0, 6, device=device), 0.02)
    assert v.coordinates.shape == (0, 4) and v.features.shape == (0, 3)
    z.features.sum().backward()  # autograd works on empty graphs too
    assert feats.grad is not None and feats.grad.shape == (0, 4)
    assert conv1.kernel.grad is not None and bool((conv1.kernel.grad == 0).all())


def test_empty_tensor_through_remaining_ops() -> None:
    feats = torch.zeros(0, 4, dtype=torch.float64, requires_grad=True)
    x = SparseTensor(feats, torch.zeros(0, 4, dtype=torch.int32))
    gmax = SparseGlobalMaxPool()(x)
    assert gmax.features.shape == (0, 4) and gmax.coordinates.shape == (0, 4)
    # 1x1 stride-1 kernel: the (C_in, C_out) matrix path, bias included
    point = SparseConv3d(4, 3, 1, 1, bias=True).double()
    assert point.kernel.dim() == 2
    p = point(x)
    assert p.features.shape == (0, 3) and p.set_id == x.set_id
    k2 = SparseConv3d(4, 3, 2, 1).double()(x)
    assert k2.features.shape == (0, 3) and k2.set_id == x.set_id
    # transposed conv onto existing (empty) coordinates, and the generative one
    coarse = SparseConv3d(4, 4, 2, 2).double()(x)
    up = SparseConvTranspose3d(4, 3, 2, 2).double()(coarse, x)
    assert up.features.shape == (0, 3) and up.set_id == x.set_id
    gen = SparseGenerativeConvTranspose3d(4, 3, 2, 2).double()(coarse)
    assert gen.features.shape == (0, 3) and gen.tensor_stride == 1
    # union `+`: same set, and two different (empty) sets of one manager
    assert (p + up).features.shape == (0, 3)
    pruned = prune(x, torch.zeros(0, dtype=torch.bool))
    u = x + pruned
    assert u.features.shape == (0, 4) and len(u.coordinates) == 0
    # lookups with zero query rows, on an empty and on a non-empty tensor
    none = torch.zeros(0, 4, dtype=torch.int32)
    assert x.lookup(none).shape == (0,) and x.lookup(none).dtype == torch.int64
    f, found = x.features_at(none)
    assert f.shape == (0, 4) and found.shape == (0,) and found.dtype == torch.bool
    assert x.lookup(torch.tensor([[0, 1, 2, 3]], dtype=torch.int32)).tolist() == [-1]
    y = SparseTensor(
        torch.ones(2, 2), torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.int32)
    )
    assert y.lookup(none).shape == (0,)
    f, found = y.features_at(none)
    assert f.shape == (0, 2) and found.shape == (0,)
    # backward through all of it
    (
        gmax.features.sum() + (p + up).features.sum() + gen.features.sum() + u.features.sum()
    ).backward()
    assert feats.grad is not None and feats.grad.shape == (0, 4)


def test_voxelize_floor_mean_first_and_inverse(device: torch.device) -> None:
    pts = torch.tensor(
        [
            [0.01, 0.01, 0.01, 1.0],
            [0.04, 0.02, 0.00, 3.0],
            [-0.01, 0.0, 0.0, 5.0],
            [0.06, 0.0, 0.0, 7.0],
        ],
        device=device,
    )
    v = voxelize(pts, 0.05)
    # floor, not truncation: -0.01 / 0.05 -> -1
    assert v.coordinates.tolist() == [[0, -1, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]]
    assert v.features[:, 0].tolist() == [5.0, 2.0, 7.0]
    assert v.counts.tolist() == [1, 2, 1]
    assert v.inverse.tolist() == [1, 1, 0, 2]
    assert v.features[v.inverse][:2, 0].tolist() == [2.0, 2.0]
    assert v.coordinates.device == device and v.features.device == device
    first = voxelize(pts, 0.05, reduction="first")
    assert first.features[:, 0].tolist() == [5.0, 1.0, 7.0]


def test_voxelize_real_scannet(data_root, device: torch.device) -> None:
    pts = torch.from_numpy(
        np.load(data_root / "scannet/scannet_instance_data/scene0000_00_vert_all.npy")
    )
    v = voxelize(pts.to(device), 0.02)
    expected = np.unique(np.floor(pts[:, :3].numpy() / np.float32(0.02)).astype(np.int64), axis=0)
    assert v.coordinates.shape[0] == expected.shape[0]
    assert np.array_equal(v.coordinates[:, 1:].cpu().numpy(), expected)
    # mean colour of a voxel equals the mean of its points
    row = int(v.counts.argmax())
    members = pts[(v.inverse == row).cpu(), 3:]
    torch.testing.assert_close(v.features[row].cpu(), members.mean(0))


def test_collate_decompose_lookup_and_features_at(device: torch.device) -> None:
    a = torch.tensor([[0, 0, 0], [1, 2, 3]], device=device)
    b = torch.tensor([[5, 5, 5]], device=device)
    fa = torch.tensor([[1.0], [2.0]], device=device)
    x = sparse_collate([a, b], [fa, torch.tensor([[3.0]], device=device)])
    assert x.device == device
    assert x.batch_size == 2
    parts = x.decompose()
    assert parts[0][0].tolist() == [[0, 0, 0], [1, 2, 3]] and parts[1][1].tolist() == [[3.0]]
    q = torch.tensor(
        [[1, 5, 5, 5], [0, 5, 5, 5], [0, 1, 2, 3], [7, 0, 0, 0], [0, 10**6, 0, 0]],
        dtype=torch.int32,
        device=device,
    )
    assert x.lookup(q).tolist() == [2, -1, 1, -1, -1]
    feats, found = x.features_at(q)
    assert found.tolist() == [True, False, True, False, False]
    assert feats[:, 0].tolist() == [3.0, 0.0, 2.0, 0.0, 0.0]


def test_union_add_prune_and_global_pooling(device: torch.device) -> None:
    coords = torch.tensor(
        [[0, 0, 0, 0], [0, 2, 0, 0], [1, 4, 4, 4]], dtype=torch.int32, device=device
    )
    x = SparseTensor(torch.tensor([[1.0], [2.0], [4.0]], device=device), coords)
    y = prune(x, torch.tensor([True, False, True], device=device))
    assert y.coordinates.tolist() == [[0, 0, 0, 0], [1, 4, 4, 4]]
    s = x + y  # union of {a,b,c} and {a,c}
    assert s.lookup(coords).tolist() == [0, 1, 2]
    assert s.features[:, 0].tolist() == [2.0, 2.0, 8.0]
    avg = SparseGlobalAvgPool()(x)
    assert avg.features[:, 0].tolist() == [1.5, 4.0]
    assert avg.coordinates.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0]]
    assert SparseGlobalMaxPool()(x).features[:, 0].tolist() == [2.0, 4.0]


def test_kernel_maps_are_cached_and_shared() -> None:
    g = torch.Generator().manual_seed(0)
    xyz = torch.unique(torch.randint(0, 20, (500, 3), generator=g), dim=0)
    x = SparseTensor(
        torch.randn(len(xyz), 4, generator=g),
        torch.cat([torch.zeros(len(xyz), 1, dtype=torch.int64), xyz], 1).int(),
    )
    c1, c2 = SparseConv3d(4, 4), SparseConv3d(4, 4)
    y = c2(c1(x))
    assert y.set_id == x.set_id
    m = x.manager
    assert m.conv_kernel_map(x.set_id, x.set_id, 3) is m.conv_kernel_map(x.set_id, x.set_id, 3)
    assert len(m._kernel_maps) == 1
    d1, d2 = SparseConv3d(4, 4, 2, 2), SparseConv3d(4, 4, 2, 2)
    assert d1(x).set_id == d2(x).set_id
    assert len(m._kernel_maps) == 2


def test_packer_roundtrip_and_offsets() -> None:
    coords = torch.tensor([[0, -5, 3, 7], [2, 100, -40, 0]], dtype=torch.int32)
    p = CoordinatePacker.fit(coords)
    keys = p.pack(coords)
    assert torch.equal(p.unpack(keys), coords)
    delta = p.delta(torch.tensor([[1, -2, 3]]))
    shifted = coords.clone()
    shifted[:, 1:] += torch.tensor([1, -2, 3], dtype=torch.int32)
    assert torch.equal(p.pack(shifted), keys + delta)


@pytest.mark.parametrize("voxel_size", [0.01, 0.05])
def test_stride2_k3_map_from_the_inputs_side_equals_the_general_search(
    data_root, voxel_size, device: torch.device
) -> None:
    """The 3x3x3 stride-2 kernel map built from the inputs' side holds exactly the pairs, the
    per-offset grouping and the pair order of the general output-side search, on a real scan
    (negative coordinates, two batch entries) at input strides 1, 2, 4, and for N = 0."""
    pts = torch.from_numpy(
        np.load(data_root / "scannet/scannet_instance_data/scene0000_00_vert_all.npy")
    )
    coords = voxelize(pts[:, :3].to(device), voxel_size).coordinates
    assert bool((coords[:, 1:] < 0).any())
    second = coords[::3].clone()
    second[:, 0] = 1
    for c in (torch.cat([coords, second]), coords[:0]):
        x = SparseTensor(torch.zeros(len(c), 1, device=device), c)
        m, in_id = x.manager, x.set_id
        for _ in range(3):
            out_id = m.stride(in_id, 2)
            offsets = kernel_offsets(3) * m.get(in_id).tensor_stride
            l_ref, c_ref, n_ref = m._search_map(in_id, out_id, offsets, False)
            l_new, c_new, n_new = m._search_map_stride2_k3(in_id, out_id, offsets)
            assert n_new == n_ref
            assert torch.equal(l_new, l_ref) and torch.equal(c_new, c_ref)
            in_id = out_id


@pytest.mark.parametrize("strategy", ["per_offset", "batched"])
def test_convolutions_ignore_autocast(device: torch.device, strategy: str) -> None:
    """Under torch.autocast (bfloat16 on the CPU, float16 on CUDA; the trainer's AMP) every
    convolution computes in the features' dtype with either strategy: float32 out, the same
    values as without autocast, and the next layer accepts it."""
    g = torch.Generator().manual_seed(0)
    xyz = torch.unique(torch.randint(0, 20, (500, 3), generator=g), dim=0)
    coords = torch.cat([torch.zeros(len(xyz), 1, dtype=torch.int64), xyz], 1).int()
    x = SparseTensor(torch.randn(len(xyz), 4, generator=g).to(device), coords.to(device))
    down = SparseConv3d(4, 4, 2, 2).to(device)
    layers = [
        SparseConv3d(4, 4, 3),
        SparseConv3d(4, 4, 3, 2),
        SparseConv3d(4, 4, 1),  # the 1x1 matrix path, no bias
        SparseConv3d(4, 4, 1, bias=True),
    ]
    half = torch.bfloat16 if device.type == "cpu" else torch.float16
    with conv_strategy(strategy):
        for layer in [*layers, SparseGenerativeConvTranspose3d(4, 4, 3, 2)]:
            layer = layer.to(device)
            inp = down(x) if isinstance(layer, SparseGenerativeConvTranspose3d) else x
            plain = layer(inp).features
            with torch.autocast(device.type, dtype=half):
                mixed = layer(inp)
                mixed = SparseConv3d(4, 2, 3).to(device)(mixed)  # accepted downstream
            assert mixed.dtype == torch.float32
            with torch.autocast(device.type, dtype=half):
                again = layer(inp).features
            torch.testing.assert_close(again, plain)
