"""Our sparse ops against dense torch.nn.functional references on small random grids (float64).

Forward and backward: the features and the gradients w.r.t. the input features, the kernel and
the bias (of one random linear functional of the outputs) must equal those of ``conv3d`` /
``conv_transpose3d`` / ``max_pool3d`` on the dense grid. The dense reference runs on any
device, so every test runs on every available one (``device`` fixture, test/conftest.py), and
the convolutions with both strategies (per-offset loop, all offsets batched).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sr3d_ros.sparse import (
    SparseConv3d,
    SparseConvTranspose3d,
    SparseGenerativeConvTranspose3d,
    SparseMaxPool3d,
    SparseTensor,
    kernel_offsets,
    voxelize,
)
from sr3d_ros.sparse.functional import ConvStrategy, conv_strategy, sparse_conv, sparse_max_pool

LO, HI = -4, 4  # grid coordinates in [LO, HI): negative coordinates exercise floor rounding
SIZE = HI - LO
TOL = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(params=["per_offset", "batched"])
def strategy(request: pytest.FixtureRequest) -> Iterator[ConvStrategy]:
    """Run the test's sparse convolutions with each strategy."""
    with conv_strategy(request.param):
        yield request.param


def random_sparse(
    seed: int,
    channels: int,
    device: torch.device,
    density: float = 0.3,
    stride: int = 1,
) -> SparseTensor:
    """Random voxels of the grid (float64 features that require grad) on ``device``."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.arange(LO, HI, stride)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    keep = torch.rand(grid.shape[0], generator=g) < density
    xyz = grid[keep]
    coords = torch.cat([torch.zeros(len(xyz), 1, dtype=torch.int64), xyz], dim=1)
    feats = torch.randn(len(xyz), channels, generator=g, dtype=torch.float64)
    return SparseTensor(
        feats.to(device).requires_grad_(), coords.int().to(device), tensor_stride=stride
    )


def to_dense(x: SparseTensor, stride: int = 1) -> torch.Tensor:
    """(1, C, D, D, D) dense grid at resolution `stride`, zeros where empty (differentiable)."""
    n = SIZE // stride
    dense = torch.zeros(1, x.features.shape[1], n, n, n, dtype=x.dtype, device=x.device)
    idx = (x.coordinates[:, 1:].long() - LO) // stride
    dense[0, :, idx[:, 0], idx[:, 1], idx[:, 2]] = x.features.t()
    return dense


def sample_dense(
    dense: torch.Tensor, coords: torch.Tensor, stride: int, origin: int = LO
) -> torch.Tensor:
    idx = (coords[:, 1:].long() - origin) // stride
    return dense[0, :, idx[:, 0], idx[:, 1], idx[:, 2]].t()


def dense_weight(kernel: torch.Tensor, k: int, transposed: bool = False) -> torch.Tensor:
    """ME layout (V, Cin, Cout) -> conv3d (Cout, Cin, k, k, k) or conv_transpose3d (Cin, Cout,
    k, k, k); differentiable w.r.t. ``kernel``."""
    kernel = kernel if kernel.dim() == 3 else kernel.unsqueeze(0)
    offs = kernel_offsets(k)
    shift = k // 2 if k % 2 == 1 else 0
    cin, cout = kernel.shape[1:]
    shape = (cin, cout, k, k, k) if transposed else (cout, cin, k, k, k)
    w = torch.zeros(shape, dtype=kernel.dtype, device=kernel.device)
    for v, (ox, oy, oz) in enumerate(offs.tolist()):
        w[..., ox + shift, oy + shift, oz + shift] = kernel[v] if transposed else kernel[v].t()
    return w


def assert_forward_backward(
    ours: torch.Tensor, reference: torch.Tensor, inputs: list[torch.Tensor]
) -> None:
    """Same values, and the same gradients of ``sum(out * r)`` (r random) w.r.t. ``inputs``."""
    assert ours.device == reference.device
    torch.testing.assert_close(ours, reference, **TOL)
    r = torch.randn(ours.shape, generator=torch.Generator().manual_seed(7), dtype=ours.dtype)
    r = r.to(ours.device)
    got = torch.autograd.grad(ours, inputs, r, retain_graph=True)
    want = torch.autograd.grad(reference, inputs, r)
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, **TOL, msg=f"gradient of input {i}")


@pytest.mark.parametrize(
    "kernel_size,stride,dilation",
    [(3, 1, 1), (1, 1, 1), (3, 2, 1), (2, 2, 1), (3, 1, 2), (1, 2, 1), (2, 1, 1)],
)
def test_conv_matches_dense_conv3d(
    kernel_size: int, stride: int, dilation: int, device: torch.device, strategy: ConvStrategy
) -> None:
    x = random_sparse(0, 3, device)
    conv = SparseConv3d(3, 5, kernel_size, stride, dilation, bias=True).double().to(device)
    with torch.no_grad():
        conv.bias.normal_()
    y = conv(x)
    dense = to_dense(x)
    if kernel_size % 2 == 1:
        pad = dilation * (kernel_size // 2)
    else:
        # ME's even kernel reaches offsets 0 .. K-1 from the output voxel (see kernel_offsets):
        # conv3d without padding, its input zero-padded on the high side only, so that with
        # stride 1 every input voxel (up to HI - 1) has an output; index j <-> LO + stride * j.
        pad = 0
        dense = F.pad(dense, (0, dilation * (kernel_size - 1)) * 3)
    ref = F.conv3d(
        dense, dense_weight(conv.kernel, kernel_size), conv.bias[0], stride, pad, dilation
    )
    # output coordinates: stride 1 keeps the input; stride s quantises with floor
    expected = torch.unique(
        torch.div(x.coordinates[:, 1:], stride, rounding_mode="floor") * stride, dim=0
    )
    got = torch.unique(y.coordinates[:, 1:], dim=0)
    assert torch.equal(expected, got)
    assert y.tensor_stride == stride
    # with even kernels and stride s the dense output index j corresponds to coordinate LO + s*j
    assert_forward_backward(
        y.features, sample_dense(ref, y.coordinates, stride), [x.features, conv.kernel, conv.bias]
    )


def test_conv_on_strided_tensor_uses_tensor_stride_offsets(
    device: torch.device, strategy: ConvStrategy
) -> None:
    x = random_sparse(1, 4, device, density=0.6, stride=2)
    conv = SparseConv3d(4, 2, 3).double().to(device)
    y = conv(x)
    ref = F.conv3d(to_dense(x, 2), dense_weight(conv.kernel, 3), None, 1, 1)
    assert_forward_backward(
        y.features, sample_dense(ref, y.coordinates, 2), [x.features, conv.kernel]
    )
    assert torch.equal(y.coordinates, x.coordinates)


def test_generative_transpose_matches_conv_transpose3d(
    device: torch.device, strategy: ConvStrategy
) -> None:
    x = random_sparse(2, 4, device, density=0.4, stride=2)
    up = SparseGenerativeConvTranspose3d(4, 3, kernel_size=2, stride=2, bias=True)
    up = up.double().to(device)
    with torch.no_grad():
        up.bias.normal_()
    y = up(x)
    assert y.tensor_stride == 1
    # every child of every input voxel, nothing else
    children = x.coordinates[:, None, 1:] + kernel_offsets(2)[None].int().to(device)
    children = children.reshape(-1, 3)
    assert torch.equal(torch.unique(children, dim=0), torch.unique(y.coordinates[:, 1:], dim=0))
    assert len(y) == 8 * len(x)
    ref = F.conv_transpose3d(
        to_dense(x, 2), dense_weight(up.kernel, 2, transposed=True), up.bias[0], stride=2
    )
    assert_forward_backward(
        y.features, sample_dense(ref, y.coordinates, 1), [x.features, up.kernel, up.bias]
    )


def test_transpose_onto_existing_coordinates(device: torch.device, strategy: ConvStrategy) -> None:
    x = random_sparse(3, 4, device, density=0.5)
    down = SparseConv3d(4, 4, 2, 2).double().to(device)
    coarse = down(x)
    up = SparseConvTranspose3d(4, 3, kernel_size=2, stride=2).double().to(device)
    y = up(coarse, x)
    assert torch.equal(y.coordinates, x.coordinates)
    ref = F.conv_transpose3d(
        to_dense(coarse, 2), dense_weight(up.kernel, 2, transposed=True), None, stride=2
    )
    # gradients flow through both layers (coarse depends on x and on down's kernel)
    assert_forward_backward(
        y.features, sample_dense(ref, y.coordinates, 1), [x.features, down.kernel, up.kernel]
    )


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_max_pool_matches_dense(kernel_size: int, device: torch.device) -> None:
    x = random_sparse(4, 3, device, density=0.4)
    y = SparseMaxPool3d(kernel_size, 2)(x)
    dense = to_dense(x)
    ones = torch.ones(len(x), 1, dtype=torch.float64, device=device)
    occupied = to_dense(x.replace_features(ones)) > 0
    dense = dense.masked_fill(~occupied.expand_as(dense), float("-inf"))
    pad = kernel_size // 2 if kernel_size % 2 == 1 else 0
    # F.max_pool3d pads with -inf; the kernel is centred like ME's for odd sizes
    ref = F.max_pool3d(dense, kernel_size, 2, pad)
    assert_forward_backward(y.features, sample_dense(ref, y.coordinates, 2), [x.features])


def _gradcheck(fn, inputs: tuple[torch.Tensor, ...]) -> bool:
    # nondet_tol: CUDA scatter-adds of colliding rows (max-pool backward) may sum in any order
    return torch.autograd.gradcheck(fn, inputs, nondet_tol=1e-12)


def test_gradcheck_conv_and_transpose(device: torch.device, strategy: ConvStrategy) -> None:
    x = random_sparse(5, 2, device, density=0.15)
    feats = x.features.detach().clone().requires_grad_(True)
    f64 = {"dtype": torch.float64, "device": device, "requires_grad": True}
    weight = torch.randn(27, 2, 3, **f64)

    out_id = x.manager.stride(x.set_id, 2)
    kmap = x.manager.conv_kernel_map(x.set_id, out_id, 3)
    assert _gradcheck(lambda fe, w: sparse_conv(fe, w, kmap), (feats, weight))
    _up_id, up_map = x.manager.generative_transposed(out_id, 2, 2)
    coarse = torch.randn(up_map.num_in, 2, **f64)
    w2 = torch.randn(8, 2, 3, **f64)
    assert _gradcheck(lambda fe, w: sparse_conv(fe, w, up_map), (coarse, w2))
    sym = x.manager.conv_kernel_map(x.set_id, x.set_id, 3)  # uses the identity fast path
    assert sym.identity == 13
    w3 = torch.randn(27, 2, 2, **f64)
    assert _gradcheck(lambda fe, w: sparse_conv(fe, w, sym), (feats, w3))
    # kernel 2, stride 1: offset 0 is i -> i
    even = x.manager.conv_kernel_map(x.set_id, x.set_id, 2)
    assert even.identity == 0
    in0, out0 = even.pairs(0)
    rows = torch.arange(len(x), device=device)
    assert torch.equal(in0, rows) and torch.equal(out0, rows)
    w4 = torch.randn(8, 2, 2, **f64)
    assert _gradcheck(lambda fe, w: sparse_conv(fe, w, even), (feats, w4))


def test_gradcheck_max_pool(device: torch.device) -> None:
    x = random_sparse(6, 3, device, density=0.3)
    feats = x.features.detach().clone().requires_grad_(True)
    for kernel_size in (2, 3):  # 3: overlapping windows, one input can win several outputs
        out_id = x.manager.stride(x.set_id, 2)
        kmap = x.manager.conv_kernel_map(x.set_id, out_id, kernel_size)
        assert _gradcheck(lambda fe, kmap=kmap: sparse_max_pool(fe, kmap), (feats,))


def test_strategies_agree_on_a_real_scan(data_root, device: torch.device) -> None:
    """Per-offset loop and all-offsets batch give the same features and gradients on the kernel
    maps of a real scan (ScanNet scene0000_00 at 4 cm: stride-1 and stride-2 3x3x3 convs, the
    generative 3x3x3 upsampling of the TR3D neck and a transposed 2x2x2 conv; float64)."""
    pts = np.load(data_root / "scannet/scannet_instance_data/scene0000_00_vert_all.npy")
    vox = voxelize(torch.from_numpy(pts).to(device), 0.04)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    feats0 = torch.randn(len(vox.coordinates), 4, generator=g, dtype=torch.float64).to(device)
    layers = torch.nn.ModuleList(
        [
            SparseConv3d(4, 5, 3, 1, bias=True),
            SparseConv3d(5, 6, 3, 2),
            SparseGenerativeConvTranspose3d(6, 3, kernel_size=3, stride=2),
            SparseConv3d(3, 4, 2, 2),
            SparseConvTranspose3d(4, 2, kernel_size=2, stride=2),
        ]
    )
    layers = layers.double().to(device)

    def run(strategy: ConvStrategy) -> list[torch.Tensor]:
        feats = feats0.clone().requires_grad_()
        with conv_strategy(strategy):
            x = SparseTensor(feats, vox.coordinates)
            a = layers[0](x)
            b = layers[1](a)
            c = layers[2](b)
            d = layers[4](layers[3](c), c)
            outs = [a.features, b.features, c.features, d.features]
            loss = sum(
                (o * torch.cos(torch.arange(o.numel(), device=device).view_as(o))).sum()
                for o in outs
            )
            grads = torch.autograd.grad(loss, [feats, *layers.parameters()])
        return [o.detach() for o in outs] + list(grads)

    for i, (a, b) in enumerate(zip(run("per_offset"), run("batched"))):
        torch.testing.assert_close(b, a, **TOL, msg=f"tensor {i}")
