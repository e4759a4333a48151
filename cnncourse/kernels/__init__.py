"""CUDA kernels for the GPU path, their launch plans, and two runners: CuPy (GPU) and a CPU emulator.

The folder, one concept per module:

====================  =================================================================
``*.cu``              the CUDA C kernels (templates over ``float`` and ``double``)
``sources``           where they are, their instantiations, their parsed C signatures
``plans``             launch plans: pure functions of shapes and dtypes giving kernel,
                      grid, block, shared bytes and the argument list with exact C types
``cupy_runner``       runs a plan on the GPU (NVRTC through ``cupy.RawModule``, lazily)
``emulator``          the CPU emulator of the CUDA execution model (``cuda_emu.h``)
``emulator_runner``   runs a plan on the emulator; :func:`emulated` switches the wrappers
``wrappers``          the public ``*_gpu`` functions (argument checks, plan, runner)
``simulate``          a per-thread Python simulation for notebook 05's first exercise
====================  =================================================================

Nothing here compiles or imports CuPy at import time.  With CuPy arrays the
wrappers run on the GPU; inside ``with cnncourse.kernels.emulated():`` they
take and return NumPy arrays and run the very same launch plan on the CPU
emulator (correct results, not GPU speed)::

    with cnncourse.kernels.emulated():
        out = cnncourse.kernels.conv_forward_direct_gpu(x, w, b, pad=1)

How threads map to elements (each source file repeats this at its top):

====================  =================================================================
kernel                mapping
====================  =================================================================
im2col                one thread per column element; i -> (n, c, ky, kx, oy, ox)
col2im                one thread per *input* element; i -> (n, c, iy, ix); it gathers
                      (sums) every column entry copied from its pixel -- no atomics
max_pool_forward      one thread per output element; i -> (n, c, oy, ox); scans its
                      window, writes the max and its row-major arg-max ky*KW + kx
max_pool_backward     one thread per input element; i -> (n, c, iy, ix); sums ``dout``
                      of every window containing it whose arg-max is this pixel
avg_pool_forward      one thread per output element; i -> (n, c, oy, ox)
avg_pool_backward     one thread per input element; i -> (n, c, iy, ix) (gather)
relu_forward/-back    one thread per element; i -> flat index (the forward can also write
                      the mask x > 0; the backward takes x or that mask)
conv_forward_direct   one block per (TH x TW output tile, image n, group of FB
                      filters); thread (tx, ty) -> output pixel, FB accumulators;
                      input patch and weights staged in shared memory per channel chunk
channel_sums          one block per (channel c, slice s); threads stride over the
                      N*H*W values of channel c, reduce in shared memory (double
                      accumulators) to per-slice partials, summed by the wrapper
====================  =================================================================

All 1-D kernels use grid-stride loops with 64-bit indices, so any grid is
correct and the launch helpers cap it; ``conv_forward_direct`` loops over
``blockIdx.z`` the same way, so its ``gridDim.z`` stays within CUDA's 65,535.
The launch geometry lives in small pure functions (:func:`launch_1d`,
:func:`direct_conv_geometry`, :func:`channel_sums_geometry`,
:func:`cols_strides`) and the argument checks run before CuPy is touched, so
both are tested on machines without a GPU.

The CPU twins live beside the layers (``cnncourse.im2col.im2col_cpu``,
``cnncourse.pool`` ...); the layer functions dispatch here when given CuPy
arrays.
"""
from __future__ import annotations

from . import emulator
from .cupy_runner import compile_all
from .emulator_runner import emulated, emulator_status
from .plans import (
    BLOCK,
    CS_BLOCK,
    DIRECT_FILTER_GROUPS,
    MAX_BLOCKS,
    MAX_GRID_Z,
    SHARED_LIMIT,
    LaunchPlan,
    channel_sums_geometry,
    check_plan,
    cols_strides,
    conv_out_size,
    direct_conv_geometry,
    launch_1d,
)
from .sources import COMPILE_OPTIONS, CTYPE, KERNEL_TEMPLATES, cu_sources, kernel_params, name_expressions, read_source
from .wrappers import (
    avg_pool_backward_gpu,
    avg_pool_forward_gpu,
    channel_sums_gpu,
    col2im_gpu,
    conv_forward_direct_gpu,
    im2col_gpu,
    max_pool_backward_gpu,
    max_pool_forward_gpu,
    relu_backward_gpu,
    relu_forward_gpu,
)

__all__ = [
    "COMPILE_OPTIONS",
    "CTYPE",
    "KERNEL_TEMPLATES",
    "BLOCK",
    "CS_BLOCK",
    "MAX_BLOCKS",
    "MAX_GRID_Z",
    "SHARED_LIMIT",
    "DIRECT_FILTER_GROUPS",
    "cu_sources",
    "read_source",
    "name_expressions",
    "kernel_params",
    "compile_all",
    "emulated",
    "emulator_status",
    "emulator",
    "LaunchPlan",
    "check_plan",
    "launch_1d",
    "conv_out_size",
    "cols_strides",
    "direct_conv_geometry",
    "channel_sums_geometry",
    "im2col_gpu",
    "col2im_gpu",
    "max_pool_forward_gpu",
    "max_pool_backward_gpu",
    "avg_pool_forward_gpu",
    "avg_pool_backward_gpu",
    "relu_forward_gpu",
    "relu_backward_gpu",
    "conv_forward_direct_gpu",
    "channel_sums_gpu",
]
