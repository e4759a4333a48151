"""Transposed convolution ("up-convolution", used by U-Net decoders).

A convolution with stride s maps H pixels to about H/s.  Its *transpose* maps
back: every input pixel paints a scaled copy of the kernel onto the output,
``stride`` pixels apart, and overlapping copies add up.  In matrix terms, if a
convolution is ``y = M x``, the transposed convolution is ``x' = M^T y``; this
is exactly the input-gradient of :func:`cnncourse.conv.conv_forward`, which is
why both are built from the same im2col/col2im pair.

Weights follow torch's layout ``(C_in, C_out, KH, KW)``.
"""
from __future__ import annotations

from ._validate import as_numeric_array, float_dtype
from .backend import get_array_module
from .conv import conv_forward
from .im2col import as_pair, col2im, im2col

__all__ = ["conv_transpose_output_size", "conv_transpose_forward", "conv_transpose_backward"]


def conv_transpose_output_size(n: int, k: int, *, stride: int = 1, pad: int = 0, dilation: int = 1, output_padding: int = 0) -> int:
    """``(n - 1) s - 2p + d (k - 1) + output_padding + 1``: the size a stride-s convolution would shrink back to n."""
    size = (n - 1) * stride - 2 * pad + dilation * (k - 1) + output_padding + 1
    if size < 1:
        raise ValueError(f"transposed convolution gives no output for n={n}, k={k}, stride={stride}, pad={pad}")
    return size


def conv_transpose_forward(x, w, b=None, *, stride=1, pad=0, dilation=1, output_padding=0):
    """Transposed convolution.

    Args:
        x: input, shape ``(N, C_in, H, W)``.
        w: weights, shape ``(C_in, C_out, KH, KW)`` (torch's ``conv_transpose2d`` layout).
        b: bias ``(C_out,)`` or None.
        stride, pad, dilation, output_padding: int or pair; ``output_padding < stride``
            picks among the output sizes that a stride-s convolution maps to the same H.

    Returns:
        out ``(N, C_out, OH, OW)`` with ``OH = conv_transpose_output_size(H, KH, ...)``, and a cache.
    """
    xp = get_array_module(x, w, b)
    x = as_numeric_array(x, "input x (N, C_in, H, W)", ndim=4)
    w = as_numeric_array(w, "weights w (C_in, C_out, KH, KW)", ndim=4)
    if w.shape[0] != x.shape[1]:
        raise ValueError(f"weight input channels must match input channels: w has C_in={w.shape[0]}, x has C={x.shape[1]}")
    if b is not None and (b.ndim != 1 or b.shape[0] != w.shape[1]):
        raise ValueError(f"bias b must have length C_out={w.shape[1]}, got shape {tuple(b.shape)}")
    stride, pad, dilation = as_pair(stride, "stride", minimum=1), as_pair(pad, "pad", minimum=0), as_pair(dilation, "dilation", minimum=1)
    output_padding = as_pair(output_padding, "output_padding", minimum=0)
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"output_padding {output_padding} must be smaller than the stride {stride} or the dilation")
    dtype = float_dtype(x, w, b)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    n, c_in, h, wd = x.shape
    c_out, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    oh = conv_transpose_output_size(h, kh, stride=stride[0], pad=pad[0], dilation=dilation[0], output_padding=output_padding[0])
    ow = conv_transpose_output_size(wd, kw, stride=stride[1], pad=pad[1], dilation=dilation[1], output_padding=output_padding[1])
    # Each input pixel scatters w[c_in] into a KH x KW patch: col2im of W^T x onto the
    # full, unpadded canvas (the size a pad-0 convolution maps back to H x W exactly).
    full = ((h - 1) * stride[0] + dilation[0] * (kh - 1) + 1, (wd - 1) * stride[1] + dilation[1] * (kw - 1) + 1)
    cols = xp.matmul(w.reshape(c_in, -1).T, x.reshape(n, c_in, h * wd))  # (N, C_out*KH*KW, H*W)
    canvas = col2im(cols, (n, c_out, *full), kh, kw, stride=stride, dilation=dilation)
    out = _move_window(canvas, pad, (oh, ow))  # drop `pad` rows each side, add output_padding rows
    if b is not None:
        out += b.astype(dtype).reshape(1, -1, 1, 1)
    return out, {"x": x, "w": w, "has_bias": b is not None, "stride": stride, "pad": pad, "dilation": dilation,
                 "full": full}


def _move_window(a, offset, size):
    """``a[..., oy:oy+h, ox:ox+w]`` with rows/columns beyond ``a`` read as zeros; ``offset`` may be negative."""
    xp = get_array_module(a)
    out = xp.zeros(a.shape[:2] + tuple(size), dtype=a.dtype)
    (oy, ox), (h, w) = offset, size
    ys = slice(max(oy, 0), min(oy + h, a.shape[2]))
    xs = slice(max(ox, 0), min(ox + w, a.shape[3]))
    out[:, :, ys.start - oy : ys.stop - oy, xs.start - ox : xs.stop - ox] = a[:, :, ys, xs]
    return out


def conv_transpose_backward(dout, cache):
    """Gradients of :func:`conv_transpose_forward`: ``(dx, dw, db)``.

    The input gradient of a transposed convolution is an ordinary convolution
    of ``dout`` with the same weights (C_in filters over C_out channels).
    """
    x, w = cache["x"], cache["w"]
    xp = get_array_module(dout, x)
    dout = dout.astype(x.dtype, copy=False)
    hyper = dict(stride=cache["stride"], dilation=cache["dilation"])
    n, c_in, h, wd = x.shape
    kh, kw = w.shape[2], w.shape[3]
    # Undo the crop: dout sits at offset `pad` inside the full canvas.
    dcanvas = _move_window(dout, tuple(-p for p in cache["pad"]), cache["full"])
    dx, _ = conv_forward(dcanvas, w, None, **hyper)
    cols = im2col(dcanvas, kh, kw, **hyper)  # (N, C_out*KH*KW, H*W)
    dw = xp.matmul(x.reshape(n, c_in, h * wd), cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    return dx, dw, db
