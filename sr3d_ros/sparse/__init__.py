"""A sparse convolution engine in pure PyTorch with MinkowskiEngine's semantics and weight layout.

Data flow: metric points -> :func:`voxelize` -> :class:`SparseTensor` (coordinates + features)
-> layers (:class:`SparseConv3d`, :class:`SparseGenerativeConvTranspose3d`,
:class:`SparseMaxPool3d`, ...) that share one :class:`CoordinateManager` and its cached kernel
maps. CPU and CUDA run the same code; nothing needs compiling.
"""

from .conv import SparseConv3d, SparseConvTranspose3d, SparseGenerativeConvTranspose3d
from .coordinates import CoordinatePacker, check_coordinates, kernel_offsets, stride_coordinates
from .functional import ConvStrategy, conv_strategy, sparse_conv, sparse_max_pool
from .kernel_map import KernelMap, PaddedPairs
from .manager import CoordinateManager, CoordinateSet
from .norm import SparseBatchNorm, SparseReLU
from .pooling import SparseGlobalAvgPool, SparseGlobalMaxPool, SparseMaxPool3d, global_pool
from .pruning import SparsePruning, prune
from .tensor import SparseTensor, sparse_collate
from .voxelize import Voxels, voxelize

__all__ = [
    "ConvStrategy",
    "CoordinateManager",
    "CoordinatePacker",
    "CoordinateSet",
    "KernelMap",
    "PaddedPairs",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseConvTranspose3d",
    "SparseGenerativeConvTranspose3d",
    "SparseGlobalAvgPool",
    "SparseGlobalMaxPool",
    "SparseMaxPool3d",
    "SparsePruning",
    "SparseReLU",
    "SparseTensor",
    "Voxels",
    "check_coordinates",
    "conv_strategy",
    "global_pool",
    "kernel_offsets",
    "prune",
    "sparse_collate",
    "sparse_conv",
    "sparse_max_pool",
    "stride_coordinates",
    "voxelize",
]
