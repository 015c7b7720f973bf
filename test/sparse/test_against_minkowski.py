"""Every sparse op against MinkowskiEngine 0.5.4 on a real ScanNet scene (1 cm and 2 cm voxels).

Same output coordinates, same features and same gradients (float64: 1e-10, float32: 1e-5
relative), with ME's state dicts loaded into our layers (this pins the kernel-offset order).
MinkowskiEngine is only a reference: ``scripts/build_minkowski.sh`` builds it (CI runs it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch

from sr3d_ros import sparse as sp

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ME = pytest.importorskip(
        "MinkowskiEngine", reason="MinkowskiEngine not installed: run scripts/build_minkowski.sh"
    )

CHANNELS_IN, CHANNELS_OUT = 4, 6


def assert_matches(ours: torch.Tensor, theirs: torch.Tensor, msg: str = "") -> None:
    """float64: 1e-10. float32: 1e-5 relative to the tensor's scale (max |value|): sums of ~10^5
    float32 products in a different order cannot agree element-wise on near-cancelling entries;
    against float64 truth ours is as accurate as ME (see the test of that below)."""
    if theirs.dtype == torch.float64:
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10, msg=msg or None)
    else:
        scale = float(theirs.abs().max()) if theirs.numel() else 1.0
        torch.testing.assert_close(
            ours, theirs, rtol=1e-5, atol=1e-5 * max(scale, 1e-30), msg=msg or None
        )


@pytest.fixture(scope="module", params=[0.01, 0.02], ids=["1cm", "2cm"])
def scene(request, data_root) -> dict:
    """Real ScanNet scan voxelized with our voxelize(); ME gets the very same coordinates."""
    pts = torch.from_numpy(
        np.load(data_root / "scannet/scannet_instance_data/scene0000_00_vert_all.npy")
    )
    vox = sp.voxelize(pts, request.param)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(len(vox.coordinates), CHANNELS_IN, generator=g, dtype=torch.float64)
    return {"coords": vox.coordinates, "feats": feats, "voxel_size": request.param}


def align(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Permutations putting both (N, 4) coordinate lists in lexicographic order; asserts they
    are equal."""
    assert ours.shape == theirs.shape, f"{ours.shape} vs {theirs.shape}"

    def order(c: torch.Tensor) -> torch.Tensor:
        c = c.long()
        c = c - c.min(0).values
        span = c.max(0).values + 1
        key = ((c[:, 0] * span[1] + c[:, 1]) * span[2] + c[:, 2]) * span[3] + c[:, 3]
        return torch.argsort(key)

    po, pt = order(ours), order(theirs)
    assert torch.equal(ours[po], theirs[pt].to(ours.dtype)), "output coordinates differ"
    return po, pt


def check_layer(
    scene: dict,
    dtype: torch.dtype,
    make_me: Callable[[], torch.nn.Module],
    make_ours: Callable[[], torch.nn.Module],
    prepare: tuple[Callable, Callable] | None = None,
) -> None:
    """Run ME and our layer on the same input; compare coordinates, features and gradients."""
    me_layer = make_me().to(dtype)
    ours = make_ours().to(dtype)
    missing = ours.load_state_dict(me_layer.state_dict(), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys

    f_me = scene["feats"].to(dtype).clone().requires_grad_(True)
    f_ours = scene["feats"].to(dtype).clone().requires_grad_(True)
    x_me = ME.SparseTensor(f_me, coordinates=scene["coords"])
    x_ours = sp.SparseTensor(f_ours, scene["coords"])
    # ME keeps the input row order for unique coordinates; check it so inputs correspond
    assert torch.equal(x_me.C.int(), scene["coords"])
    if prepare is not None:
        x_me, x_ours = prepare[0](x_me), prepare[1](x_ours)
    y_me, y_ours = me_layer(x_me), ours(x_ours)
    assert y_ours.tensor_stride == y_me.tensor_stride[0]
    po, pt = align(y_ours.coordinates, y_me.C)
    assert_matches(y_ours.features[po], y_me.F[pt], "features")
    # gradients of the same random linear functional of the outputs
    g = torch.Generator().manual_seed(1)
    weights = torch.randn(y_me.F.shape, generator=g, dtype=dtype)
    w_ours = torch.empty_like(weights)
    w_ours[po] = weights[pt]
    (y_me.F * weights).sum().backward()
    (y_ours.features * w_ours).sum().backward()
    assert_matches(f_ours.grad, f_me.grad, "input gradient")
    for (name, p_me), (_, p_ours) in zip(me_layer.named_parameters(), ours.named_parameters()):
        assert_matches(p_ours.grad, p_me.grad, f"gradient of {name}")


DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize(
    "kernel_size,stride,bias",
    [(3, 1, True), (3, 2, False), (2, 2, True), (2, 1, True), (1, 1, True), (1, 2, False)],
)
def test_convolution(scene, dtype, kernel_size, stride, bias) -> None:
    check_layer(
        scene,
        dtype,
        lambda: ME.MinkowskiConvolution(
            CHANNELS_IN,
            CHANNELS_OUT,
            kernel_size=kernel_size,
            stride=stride,
            bias=bias,
            dimension=3,
        ),
        lambda: sp.SparseConv3d(CHANNELS_IN, CHANNELS_OUT, kernel_size, stride, bias=bias),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_generative_transposed_convolution(scene, dtype, kernel_size) -> None:
    # upsample a stride-4 tensor (made by identity-free max pooling) back to stride 2
    check_layer(
        scene,
        dtype,
        lambda: ME.MinkowskiGenerativeConvolutionTranspose(
            CHANNELS_IN, CHANNELS_OUT, kernel_size=kernel_size, stride=2, bias=True, dimension=3
        ),
        lambda: sp.SparseGenerativeConvTranspose3d(
            CHANNELS_IN, CHANNELS_OUT, kernel_size, 2, bias=True
        ),
        prepare=(
            lambda x: ME.MinkowskiMaxPooling(kernel_size=2, stride=2, dimension=3)(
                ME.MinkowskiMaxPooling(kernel_size=2, stride=2, dimension=3)(x)
            ),
            lambda x: sp.SparseMaxPool3d(2, 2)(sp.SparseMaxPool3d(2, 2)(x)),
        ),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kernel_size,stride", [(2, 2), (3, 2)])
def test_max_pooling(scene, dtype, kernel_size, stride) -> None:
    check_layer(
        scene,
        dtype,
        lambda: ME.MinkowskiMaxPooling(kernel_size=kernel_size, stride=stride, dimension=3),
        lambda: sp.SparseMaxPool3d(kernel_size, stride),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_batchnorm_relu(scene, dtype) -> None:
    def me() -> torch.nn.Module:
        m = torch.nn.Sequential(ME.MinkowskiBatchNorm(CHANNELS_IN), ME.MinkowskiReLU())
        with torch.no_grad():
            m[0].bn.weight.uniform_(0.5, 1.5)
            m[0].bn.bias.uniform_(-0.5, 0.5)
        return m

    check_layer(
        scene,
        dtype,
        me,
        lambda: torch.nn.Sequential(sp.SparseBatchNorm(CHANNELS_IN), sp.SparseReLU()),
    )


def test_global_avg_pooling(scene) -> None:
    check_layer(scene, torch.float64, ME.MinkowskiGlobalAvgPooling, sp.SparseGlobalAvgPool)


def test_global_max_pooling(scene) -> None:
    """Forward equals ME's. ME 0.5.4's CPU backward of global max pooling sends the gradient to
    wrong rows (not the arg-max; seen on this very scene), so the gradient is checked against
    the definition instead: d max / d x = 1 at the arg-max row of each channel, 0 elsewhere."""
    feats = scene["feats"].clone().requires_grad_(True)
    y_me = ME.MinkowskiGlobalMaxPooling()(
        ME.SparseTensor(scene["feats"], coordinates=scene["coords"])
    )
    y = sp.SparseGlobalMaxPool()(sp.SparseTensor(feats, scene["coords"]))
    assert y.coordinates.tolist() == y_me.C.tolist() == [[0, 0, 0, 0]]
    torch.testing.assert_close(y.features, y_me.F, rtol=1e-10, atol=1e-10)
    y.features.sum().backward()
    expected = torch.zeros_like(feats)
    expected[scene["feats"].argmax(0), torch.arange(CHANNELS_IN)] = 1.0
    assert torch.equal(feats.grad, expected)


def test_pruning(scene) -> None:
    keep = scene["coords"][:, 3] % 3 != 0  # a real, irregular subset

    class MePrune(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return ME.MinkowskiPruning()(x, keep)

    class OurPrune(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return sp.prune(x, keep)

    check_layer(scene, torch.float64, MePrune, OurPrune)


def test_small_network_end_to_end(scene) -> None:
    """conv(s2) -> BN -> ReLU -> pool -> conv -> generative up -> conv: a TR3D-like chain."""

    def me_net() -> torch.nn.Module:
        return torch.nn.Sequential(
            ME.MinkowskiConvolution(CHANNELS_IN, 8, kernel_size=3, stride=2, dimension=3),
            ME.MinkowskiBatchNorm(8),
            ME.MinkowskiReLU(),
            ME.MinkowskiMaxPooling(kernel_size=2, stride=2, dimension=3),
            ME.MinkowskiConvolution(8, 8, kernel_size=3, dimension=3),
            ME.MinkowskiGenerativeConvolutionTranspose(8, 8, kernel_size=2, stride=2, dimension=3),
            ME.MinkowskiConvolution(8, CHANNELS_OUT, kernel_size=3, bias=True, dimension=3),
        )

    def our_net() -> torch.nn.Module:
        return torch.nn.Sequential(
            sp.SparseConv3d(CHANNELS_IN, 8, 3, 2),
            sp.SparseBatchNorm(8),
            sp.SparseReLU(),
            sp.SparseMaxPool3d(2, 2),
            sp.SparseConv3d(8, 8, 3),
            sp.SparseGenerativeConvTranspose3d(8, 8, 2, 2),
            sp.SparseConv3d(8, CHANNELS_OUT, 3, bias=True),
        )

    check_layer(scene, torch.float64, me_net, our_net)


def test_float32_weight_gradient_as_accurate_as_minkowski(scene) -> None:
    """Against float64 truth, our float32 weight gradient meets the same 1e-5-of-scale bound as
    ME's own float32 result (the tolerance used for the float32 comparisons above)."""
    grads = {}
    for dtype in (torch.float64, torch.float32):
        me = ME.MinkowskiConvolution(CHANNELS_IN, CHANNELS_OUT, kernel_size=3, dimension=3).to(
            dtype
        )
        ours = sp.SparseConv3d(CHANNELS_IN, CHANNELS_OUT, 3).to(dtype)
        ours.load_state_dict(me.state_dict())
        me(
            ME.SparseTensor(scene["feats"].to(dtype), coordinates=scene["coords"])
        ).F.sum().backward()
        ours(sp.SparseTensor(scene["feats"].to(dtype), scene["coords"])).features.sum().backward()
        grads[dtype] = (me.kernel.grad.double(), ours.kernel.grad.double())
    truth = grads[torch.float64][0]
    err_me = (grads[torch.float32][0] - truth).abs().max()
    err_ours = (grads[torch.float32][1] - truth).abs().max()
    bound = 1e-5 * truth.abs().max()
    assert err_me <= bound  # the reference itself meets it
    assert err_ours <= bound, (float(err_ours), float(err_me), float(bound))


@pytest.mark.parametrize("voxel_size", [0.01, 0.02], ids=["1cm", "2cm"])
def test_voxelize_matches_minkowski_sparse_quantize(data_root, voxel_size) -> None:
    """Our voxelize() gives the coordinates of ME's own quantization (``ME.utils.sparse_quantize``,
    its documented (N, 3) call) on the same float32 points: the same set of voxels, and every
    point in the same voxel. The aligned scene has negative x, y and z, where floor and
    truncation differ (checked), so this pins the floor semantics."""
    pts = np.load(data_root / "scannet/scannet_instance_data/scene0000_00_vert_all.npy")
    xyz = np.ascontiguousarray(pts[:, :3])
    assert (xyz.min(axis=0) < 0).all()
    scaled = xyz / np.float32(voxel_size)
    assert (np.trunc(scaled) != np.floor(scaled)).any(axis=0).all()  # truncation would differ

    ours = sp.voxelize(torch.from_numpy(pts), voxel_size)
    me_coords, _, me_inverse = ME.utils.sparse_quantize(
        xyz, quantization_size=voxel_size, return_index=True, return_inverse=True
    )
    me_coords = torch.as_tensor(me_coords).to(torch.int32)
    me_inverse = torch.as_tensor(me_inverse).to(torch.int64)
    assert (ours.coordinates[:, 0] == 0).all()
    # same set of voxels (ours is sorted lexicographically; sort ME's the same way)
    assert me_coords.shape == (len(ours.coordinates), 3)
    assert torch.equal(torch.unique(me_coords, dim=0), ours.coordinates[:, 1:])
    # every point lands in the same voxel, and that voxel is floor(xyz / voxel_size)
    per_point = ours.coordinates[ours.inverse, 1:]
    assert torch.equal(per_point, me_coords[me_inverse])
    assert torch.equal(per_point, torch.from_numpy(np.floor(scaled).astype(np.int32)))
