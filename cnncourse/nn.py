"""Thin layer objects (``Module``) around the forward/backward pairs of the package.

A module holds its parameters and the cache of its last forward pass, nothing
more: every number it computes comes from a function of :mod:`cnncourse.conv`,
:mod:`cnncourse.pool`, :mod:`cnncourse.activations`, :mod:`cnncourse.linear`
or :mod:`cnncourse.dropout`.  The classes mirror ``torch.nn`` so that a
network written here reads like its PyTorch twin::

    net = Sequential(Conv2d(1, 8, 3, pad=1), ReLU(), MaxPool2d(2), Flatten(), Linear(8 * 4 * 4, 10))
    logits = net(x)                      # forward, caches kept inside the layers
    dx = net.backward(dlogits)           # backward, in reverse; fills p.grad
    for p in net.parameters(): ...       # Parameter objects: p.value, p.grad

Writing a new layer (the pattern every module follows)::

    class Scale(Module):
        def __init__(self, c):
            super().__init__()
            self.gamma = Parameter(np.ones(c, np.float32), "gamma")   # found by parameters()
        def forward(self, x):
            out, self.cache = scale_forward(x, self.gamma.value)      # cache kept on self
            return out
        def backward(self, dout):
            dx, dgamma = scale_backward(dout, self.cache)
            self.gamma.grad += dgamma                                 # gradients accumulate
            return dx

Parameters are found by looking at the attributes of a module: an attribute
holding a :class:`Parameter` is a parameter, one holding a :class:`Module`
(or a list/tuple of them) is a child, searched recursively.  Arrays named in
the class attribute ``buffers`` (e.g. batch-norm running statistics) move
with :meth:`Module.to` and are saved by :meth:`Module.state_dict`.

Gradients *accumulate* (``grad += ...``) as in PyTorch: call
:meth:`Module.zero_grad` (or the optimiser's) before each backward pass.
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from . import activations, conv, dropout, layout, linear, pool
from .backend import get_array_module, to_device

__all__ = [
    "Parameter",
    "Module",
    "Sequential",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "GlobalAvgPool",
    "ReLU",
    "LeakyReLU",
    "Flatten",
    "Linear",
    "Dropout",
    "count_parameters",
    "summary",
    "SummaryRow",
]


class Parameter:
    """A trainable array and its gradient (same shape, dtype and device).

    Attributes:
        value: the array itself; optimisers update it in place.
        grad: the gradient of the loss with respect to ``value``, filled
            (accumulated) by the owning module's ``backward``.
        name: a short label (``"weight"``, ``"bias"``), used in reprs.
    """

    __slots__ = ("value", "grad", "name")

    def __init__(self, value, name: str = ""):
        xp = get_array_module(value)
        self.value = value
        self.grad = xp.zeros_like(value)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def size(self) -> int:
        return int(self.value.size)

    @property
    def dtype(self):
        return self.value.dtype

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.shape}, dtype={self.dtype})"


def _as_rng(rng):
    """``None``/int seed/Generator -> a NumPy Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _uniform_init(rng, shape, fan_in: int, dtype):
    """PyTorch's default for Conv2d and Linear: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    This is ``kaiming_uniform_(w, a=sqrt(5))``: the He/Kaiming uniform bound
    ``gain * sqrt(3 / fan_in)`` with the leaky-ReLU gain ``sqrt(2 / (1 + a^2))
    = sqrt(1/3)``.  PyTorch draws the bias from the same interval.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Module:
    """Base class: a layer (or a network of layers) with a forward and a backward pass.

    Subclasses define :meth:`forward` (keeping what backward needs on
    ``self``) and :meth:`backward` (returning the gradient for the input and
    adding parameter gradients into ``Parameter.grad``).  Calling a module
    runs its forward pass.
    """

    buffers: tuple[str, ...] = ()  # names of non-trainable array attributes (moved by .to, saved in state_dict)
    training = True  # class-level defaults, so a subclass that forgets super().__init__() still works
    cache = None

    def __init__(self):
        self.training = True
        self.cache = None

    # ------------------------------------------------------------------ the two passes
    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def backward_params(self, dout) -> None:
        """Backward pass for the parameter gradients only, when nobody needs the input's gradient.

        A training step calls this on the whole network: the first layer's
        input is the data, so computing its gradient would be wasted work (for
        a first convolution layer, about a third of its backward).  Layers that
        can skip that work override this; the default runs :meth:`backward`.
        """
        self.backward(dout)

    # ------------------------------------------------------------------ structure
    def named_children(self):
        """``(name, module)`` for every direct sub-module, in attribute order."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield (str(i) if name == "layers" else f"{name}.{i}"), item

    def children(self):
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = ""):
        """``(dotted name, module)`` for this module and every descendant (depth first)."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = ""):
        """``(dotted name, Parameter)`` for every parameter, each listed once."""
        seen = set()
        for mod_name, module in self.named_modules(prefix):
            for name, value in vars(module).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def parameters(self):
        """Every :class:`Parameter` of this module and its sub-modules (recursively)."""
        for _, p in self.named_parameters():
            yield p

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0

    # ------------------------------------------------------------------ modes and devices
    def train(self, mode: bool = True):
        """Training mode (dropout active, batch statistics); returns ``self``."""
        for _, module in self.named_modules():
            module.training = bool(mode)
        return self

    def eval(self):
        """Inference mode: ``train(False)``; returns ``self``."""
        return self.train(False)

    def to(self, device: str):
        """Move every parameter, gradient and buffer to ``"cpu"`` or ``"gpu"``; returns ``self``."""
        for p in self.parameters():
            p.value = to_device(p.value, device)
            p.grad = to_device(p.grad, device)
        for _, module in self.named_modules():
            module.cache = None  # a cache on the old device would mix devices in backward
            for name in module.buffers:
                if getattr(module, name, None) is not None:
                    setattr(module, name, to_device(getattr(module, name), device))
        return self

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict:
        """Copies of every parameter value and buffer, by dotted name."""
        state = {name: p.value.copy() for name, p in self.named_parameters()}
        for mod_name, module in self.named_modules():
            for name in module.buffers:
                value = getattr(module, name, None)
                if value is not None:
                    state[f"{mod_name}.{name}" if mod_name else name] = value.copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy values from :meth:`state_dict` back, in place (optimiser state stays valid)."""
        for name, p in self.named_parameters():
            p.value[...] = state[name]
        for mod_name, module in self.named_modules():
            for name in module.buffers:
                key = f"{mod_name}.{name}" if mod_name else name
                if key in state:
                    getattr(module, name)[...] = state[key]

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The text inside the parentheses of ``repr``; subclasses override it."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Layers applied one after another; backward runs them in reverse order."""

    def __init__(self, *layers: Module):
        super().__init__()
        for k, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Module objects, got {type(layer).__name__} at position {k}")
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def backward_params(self, dout) -> None:
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        if self.layers:
            self.layers[0].backward_params(dout)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)


class Conv2d(Module):
    """Convolution layer (cross-correlation), ``torch.nn.Conv2d`` semantics.

    ``weight`` has shape ``(F, C, KH, KW)`` = ``(c_out, c_in, k, k)`` and
    ``bias`` shape ``(F,)``; both start as PyTorch's default
    (He/Kaiming uniform with ``a = sqrt(5)``, i.e. ``U(-1/sqrt(fan_in),
    1/sqrt(fan_in))`` with ``fan_in = C*KH*KW``).

    Args:
        c_in, c_out: input and output channels.
        k: kernel size (an int or a ``(KH, KW)`` pair).
        stride, pad, dilation: as in :func:`cnncourse.conv.conv_forward`.
        bias: learn a bias per filter.
        rng: ``np.random.Generator`` or an int seed for the initial weights.
        dtype: parameter dtype (float32 by default).
    """

    def __init__(self, c_in: int, c_out: int, k, *, stride=1, pad=0, dilation=1, bias: bool = True, rng=None,
                 dtype=np.float32):
        super().__init__()
        kh, kw = (k, k) if np.isscalar(k) else tuple(k)
        self.c_in, self.c_out, self.k = int(c_in), int(c_out), (int(kh), int(kw))
        self.stride, self.pad, self.dilation = stride, pad, dilation
        rng = _as_rng(rng)
        fan_in = self.c_in * kh * kw
        self.weight = Parameter(_uniform_init(rng, (self.c_out, self.c_in, kh, kw), fan_in, dtype), "weight")
        self.bias = Parameter(_uniform_init(rng, (self.c_out,), fan_in, dtype), "bias") if bias else None

    def forward(self, x):
        b = None if self.bias is None else self.bias.value
        out, self.cache = conv.conv_forward(x, self.weight.value, b, stride=self.stride, pad=self.pad,
                                            dilation=self.dilation)
        return out

    def backward(self, dout):
        return self._accumulate(*conv.conv_backward(dout, self.cache))

    def backward_params(self, dout) -> None:
        self._accumulate(*conv.conv_backward(dout, self.cache, need_dx=False))

    def _accumulate(self, dx, dw, db):
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        k = self.k[0] if self.k[0] == self.k[1] else self.k
        text = f"{self.c_in}, {self.c_out}, k={k}"
        for name, default in (("stride", 1), ("pad", 0), ("dilation", 1)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text + ("" if self.bias is not None else ", bias=False")


class _Pool(Module):
    _forward = _backward = None  # the pool.* pair, set by subclasses

    def __init__(self, size=2, stride=None, pad=0):
        super().__init__()
        self.size, self.stride, self.pad = size, stride, pad

    def forward(self, x):
        out, self.cache = type(self)._forward(x, size=self.size, stride=self.stride, pad=self.pad)
        return out

    def backward(self, dout):
        return type(self)._backward(dout, self.cache)

    def extra_repr(self) -> str:
        text = f"{self.size}"
        if self.stride is not None:
            text += f", stride={self.stride}"
        return text + (f", pad={self.pad}" if self.pad else "")


class MaxPool2d(_Pool):
    """Max pooling over ``size x size`` windows (stride defaults to ``size``)."""

    _forward = staticmethod(pool.max_pool_forward)
    _backward = staticmethod(pool.max_pool_backward)


class AvgPool2d(_Pool):
    """Average pooling over ``size x size`` windows (padding counts as zeros, as in PyTorch)."""

    _forward = staticmethod(pool.avg_pool_forward)
    _backward = staticmethod(pool.avg_pool_backward)


class GlobalAvgPool(Module):
    """Mean over each whole feature map: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x):
        out, self.cache = pool.global_avg_pool_forward(x)
        return out

    def backward(self, dout):
        return pool.global_avg_pool_backward(dout, self.cache)


class ReLU(Module):
    """``max(0, x)`` element-wise."""

    def forward(self, x):
        out, self.cache = activations.relu_forward(x)
        return out

    def backward(self, dout):
        return activations.relu_backward(dout, self.cache)


class LeakyReLU(Module):
    """``x`` for ``x > 0``, ``slope * x`` otherwise."""

    def __init__(self, slope: float = 0.01):
        super().__init__()
        self.slope = slope

    def forward(self, x):
        out, self.cache = activations.leaky_relu_forward(x, slope=self.slope)
        return out

    def backward(self, dout):
        return activations.leaky_relu_backward(dout, self.cache)

    def extra_repr(self) -> str:
        return f"slope={self.slope}"


class Flatten(Module):
    """``(N, C, H, W) -> (N, C*H*W)``: a reshape (its backward reshapes back)."""

    def forward(self, x):
        self.cache = x
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        dx = dout.reshape(self.cache.shape)
        if dx.ndim == 4 and get_array_module(dx) is np:  # same memory order as the input (cnncourse.layout)
            dx = layout.match(dx, self.cache)
        return dx


class Linear(Module):
    """Fully connected layer ``out = x @ W + b`` with ``W`` of shape ``(d_in, d_out)``.

    Note the layout: ``W`` is the transpose of ``torch.nn.Linear.weight``
    (``(d_out, d_in)``), matching :func:`cnncourse.linear.linear_forward`.
    Initialised as PyTorch does: ``U(-1/sqrt(d_in), 1/sqrt(d_in))``.
    """

    def __init__(self, d_in: int, d_out: int, *, bias: bool = True, rng=None, dtype=np.float32):
        super().__init__()
        self.d_in, self.d_out = int(d_in), int(d_out)
        rng = _as_rng(rng)
        # Drawn in torch's (d_out, d_in) order, then transposed, so a seed gives the same numbers as the torch layout.
        w = _uniform_init(rng, (self.d_out, self.d_in), self.d_in, dtype).T.copy()
        self.weight = Parameter(w, "weight")
        self.bias = Parameter(_uniform_init(rng, (self.d_out,), self.d_in, dtype), "bias") if bias else None

    def forward(self, x):
        b = None if self.bias is None else self.bias.value
        out, self.cache = linear.linear_forward(x, self.weight.value, b)
        return out

    def backward(self, dout):
        dx, dw, db = linear.linear_backward(dout, self.cache)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self) -> str:
        return f"{self.d_in}, {self.d_out}" + ("" if self.bias is not None else ", bias=False")


class Dropout(Module):
    """Inverted dropout: drops each unit with probability ``p`` in training, identity in eval mode."""

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        self.p = p
        self.rng = _as_rng(rng)

    def forward(self, x):
        out, self.cache = dropout.dropout_forward(x, p=self.p, training=self.training, rng=self.rng)
        return out

    def backward(self, dout):
        return dropout.dropout_backward(dout, self.cache)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ---------------------------------------------------------------------------- counting and summaries

SummaryRow = namedtuple("SummaryRow", ["name", "output_shape", "params"])
SummaryRow.__doc__ = "One row of :func:`summary`: layer name, output shape (without the batch axis), parameter count."


def count_parameters(module: Module) -> int:
    """Number of trainable numbers (weights and biases) in ``module``."""
    return sum(p.size for p in module.parameters())


def _leaves(module: Module, prefix: str = ""):
    """Top-level layers for the summary: Sequentials are opened, other modules are one row."""
    if isinstance(module, Sequential):
        for k, layer in enumerate(module.layers):
            yield from _leaves(layer, f"{prefix}{k}." if isinstance(layer, Sequential) else f"{prefix}{k}")
    else:
        yield prefix, module


def summary(module: Module, input_shape, *, print_table: bool = True) -> list[SummaryRow]:
    """Output shape and parameter count of every layer, from a forward pass of zeros.

    Args:
        module: a network (Sequentials are listed layer by layer).
        input_shape: ``(C, H, W)`` (or ``(N, C, H, W)``; the batch size is ignored).
        print_table: also print the table, with the number of units
            (outputs per example) of each layer and a total line.

    Returns:
        list of :class:`SummaryRow` ``(name, output_shape, params)``, the
        output shape without the batch axis.

    The pass runs in eval mode (dropout draws no random numbers) and the
    module's modes are restored afterwards; layer caches are overwritten.
    """
    params = list(module.parameters())
    xp = get_array_module(params[0].value) if params else np
    dtype = params[0].dtype if params else np.float32
    shape = tuple(int(s) for s in input_shape)
    shape = shape[1:] if len(shape) == 4 else shape
    modes = {id(m): m.training for _, m in module.named_modules()}
    module.eval()
    rows = []
    try:
        x = xp.zeros((1, *shape), dtype=dtype)
        for name, layer in _leaves(module):
            x = layer(x)
            label = f"{name}: {type(layer).__name__}({layer.extra_repr()})" if name else repr(layer)
            rows.append(SummaryRow(label, tuple(int(s) for s in x.shape[1:]), count_parameters(layer)))
    finally:
        for _, m in module.named_modules():
            m.training = modes[id(m)]
    if print_table:
        _print_summary(rows, shape)
    return rows


def _print_summary(rows, input_shape) -> None:
    header = ("layer", "output shape", "units", "params")
    body = [("input", str(input_shape), f"{math.prod(input_shape):,}", "")]
    body += [(r.name, str(r.output_shape), f"{math.prod(r.output_shape):,}", f"{r.params:,}") for r in rows]
    total = ("total", "", "", f"{sum(r.params for r in rows):,}")
    widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(4)]

    def fmt(line):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))

    rule = "-" * len(fmt(header))
    print("\n".join([fmt(header), rule, *map(fmt, body), rule, fmt(total)]))


# ---------------------------------------------------------------------------- deeper nets (notebooks 09 and 10)
# Normalisation layers and the residual block.  As above, the maths lives in
# cnncourse.batchnorm and cnncourse.residual; these classes hold parameters,
# running statistics (buffers) and caches.

from . import batchnorm, residual  # noqa: E402  (imported here, beside the classes that use them)

__all__ += ["BatchNorm2d", "BatchNorm1d", "LayerNorm", "GroupNorm", "Residual"]


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d: ``gamma``/``beta`` parameters, running statistics as buffers.

    In training mode the layer normalises with the batch statistics and
    updates ``running_mean``/``running_var`` in place (PyTorch's convention:
    ``new = (1 - momentum) * old + momentum * batch``, unbiased batch variance);
    in eval mode it uses the running statistics and leaves them alone.
    """

    buffers = ("running_mean", "running_var")
    _forward = _backward = None  # the batchnorm.* pair, set by subclasses

    def __init__(self, C: int, *, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        self.C, self.momentum, self.eps = int(C), momentum, eps
        self.gamma = Parameter(np.ones(self.C, dtype=dtype), "gamma")
        self.beta = Parameter(np.zeros(self.C, dtype=dtype), "beta")
        self.running_mean = np.zeros(self.C, dtype=dtype)
        self.running_var = np.ones(self.C, dtype=dtype)

    def forward(self, x):
        out, self.cache, new_mean, new_var = type(self)._forward(
            x, self.gamma.value, self.beta.value, training=self.training, running_mean=self.running_mean,
            running_var=self.running_var, momentum=self.momentum, eps=self.eps)
        if self.training:  # in place, so the buffers keep their dtype, device and identity
            self.running_mean[...] = new_mean
            self.running_var[...] = new_var
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = type(self)._backward(dout, self.cache)
        self.gamma.grad += dgamma
        self.beta.grad += dbeta
        return dx

    def extra_repr(self) -> str:
        return f"{self.C}, momentum={self.momentum}, eps={self.eps}"


class BatchNorm2d(_BatchNorm):
    """Batch norm of conv activations ``(N, C, H, W)``: one mean/variance per channel over N, H, W.

    Mirrors ``torch.nn.BatchNorm2d(C, momentum=0.1, eps=1e-5)`` (``gamma``/``beta``
    are torch's ``weight``/``bias``); see :func:`cnncourse.batchnorm.spatial_batchnorm_forward`.
    """

    _forward = staticmethod(batchnorm.spatial_batchnorm_forward)
    _backward = staticmethod(batchnorm.spatial_batchnorm_backward)


class BatchNorm1d(_BatchNorm):
    """Batch norm of features ``(N, D)``: one mean/variance per feature over the batch (``torch.nn.BatchNorm1d``)."""

    _forward = staticmethod(batchnorm.batchnorm_forward)
    _backward = staticmethod(batchnorm.batchnorm_backward)


class LayerNorm(Module):
    """Layer norm: each sample standardised over all its features (every axis but the batch axis).

    ``normalized_shape`` must be the shape of one sample, ``x.shape[1:]``
    (e.g. ``(C, H, W)``); ``gamma``/``beta`` have that shape, as in
    ``torch.nn.LayerNorm(normalized_shape)``.  No running statistics: train
    and eval mode compute the same thing.
    """

    def __init__(self, normalized_shape, *, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        shape = (int(normalized_shape),) if np.isscalar(normalized_shape) else tuple(int(s) for s in normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.gamma = Parameter(np.ones(shape, dtype=dtype), "gamma")
        self.beta = Parameter(np.zeros(shape, dtype=dtype), "beta")

    def forward(self, x):
        if tuple(x.shape[1:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape} normalises whole samples: expected input shape "
                             f"(N, {', '.join(map(str, self.normalized_shape))}), got {tuple(x.shape)}")
        out, self.cache = batchnorm.layernorm_forward(x, self.gamma.value, self.beta.value, eps=self.eps)
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = batchnorm.layernorm_backward(dout, self.cache)
        self.gamma.grad += dgamma
        self.beta.grad += dbeta
        return dx

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class GroupNorm(Module):
    """Group norm of ``(N, C, H, W)``: each sample's C channels in ``groups`` groups, each group standardised.

    ``torch.nn.GroupNorm(groups, C)``: ``gamma``/``beta`` of shape (C,);
    ``groups=1`` normalises like layer norm, ``groups=C`` is instance norm.
    """

    def __init__(self, groups: int, C: int, *, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        if C % groups:
            raise ValueError(f"groups must divide the channel count: {C} channels, {groups} groups")
        self.groups, self.C, self.eps = int(groups), int(C), eps
        self.gamma = Parameter(np.ones(self.C, dtype=dtype), "gamma")
        self.beta = Parameter(np.zeros(self.C, dtype=dtype), "beta")

    def forward(self, x):
        out, self.cache = batchnorm.groupnorm_forward(x, self.gamma.value, self.beta.value, groups=self.groups, eps=self.eps)
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = batchnorm.groupnorm_backward(dout, self.cache)
        self.gamma.grad += dgamma
        self.beta.grad += dbeta
        return dx

    def extra_repr(self) -> str:
        return f"{self.groups}, {self.C}, eps={self.eps}"


class Residual(Module):
    """A basic ResNet block, ``ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))) + shortcut(x))``.

    The shortcut is the identity, or a 1x1 convolution (stride ``stride``)
    followed by batch norm when the shape changes (``c_in != c_out`` or
    ``stride != 1``).  Forward and backward are
    :func:`cnncourse.residual.residual_block_forward`/``backward``.

    Parameters: ``w1 (c_out, c_in, 3, 3)``, ``gamma1``, ``beta1``,
    ``w2 (c_out, c_out, 3, 3)``, ``gamma2``, ``beta2`` and, with a
    projection, ``w_proj (c_out, c_in, 1, 1)``, ``gamma_proj``, ``beta_proj``.
    The convolutions have no bias (the batch norm after each supplies the
    shift).  Weights start as PyTorch's default for Conv2d; BN starts at
    gamma = 1, beta = 0, unless ``zero_init=True`` sets ``gamma2 = 0``, which
    makes a new block compute ``ReLU(shortcut(x))``.
    Running statistics are buffers ``mean1, var1, mean2, var2`` (and
    ``mean_proj, var_proj``), updated in training mode.
    """

    buffers = ("mean1", "var1", "mean2", "var2", "mean_proj", "var_proj")

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1, rng=None, momentum: float = 0.1, eps: float = 1e-5,
                 zero_init: bool = False, dtype=np.float32):
        super().__init__()
        rng = _as_rng(rng)
        self.c_in, self.c_out, self.stride, self.momentum, self.eps = int(c_in), int(c_out), int(stride), momentum, eps
        c_in, c_out = self.c_in, self.c_out
        self.w1 = Parameter(_uniform_init(rng, (c_out, c_in, 3, 3), c_in * 9, dtype), "w1")
        self.gamma1 = Parameter(np.ones(c_out, dtype=dtype), "gamma1")
        self.beta1 = Parameter(np.zeros(c_out, dtype=dtype), "beta1")
        self.w2 = Parameter(_uniform_init(rng, (c_out, c_out, 3, 3), c_out * 9, dtype), "w2")
        self.gamma2 = Parameter(np.full(c_out, 0.0 if zero_init else 1.0, dtype=dtype), "gamma2")
        self.beta2 = Parameter(np.zeros(c_out, dtype=dtype), "beta2")
        self.mean1, self.var1 = np.zeros(c_out, dtype=dtype), np.ones(c_out, dtype=dtype)
        self.mean2, self.var2 = np.zeros(c_out, dtype=dtype), np.ones(c_out, dtype=dtype)
        self.w_proj = self.gamma_proj = self.beta_proj = self.mean_proj = self.var_proj = None
        if c_in != c_out or self.stride != 1:
            self.w_proj = Parameter(_uniform_init(rng, (c_out, c_in, 1, 1), c_in, dtype), "w_proj")
            self.gamma_proj = Parameter(np.ones(c_out, dtype=dtype), "gamma_proj")
            self.beta_proj = Parameter(np.zeros(c_out, dtype=dtype), "beta_proj")
            self.mean_proj, self.var_proj = np.zeros(c_out, dtype=dtype), np.ones(c_out, dtype=dtype)

    @property
    def has_projection(self) -> bool:
        return self.w_proj is not None

    def _params(self):
        names = ["w1", "gamma1", "beta1", "w2", "gamma2", "beta2"]
        if self.has_projection:
            names += ["w_proj", "gamma_proj", "beta_proj"]
        return [getattr(self, n) for n in names]

    def _stats(self):
        stats = [(self.mean1, self.var1), (self.mean2, self.var2)]
        if self.has_projection:
            stats.append((self.mean_proj, self.var_proj))
        return stats

    def forward(self, x):
        stats = self._stats()
        out, self.cache, new_stats = residual.residual_block_forward(
            x, *[p.value for p in self._params()], stride=self.stride, training=self.training,
            running_stats=tuple(stats), momentum=self.momentum, eps=self.eps)
        if self.training:
            for (mean, var), (new_mean, new_var) in zip(stats, new_stats):
                mean[...] = new_mean
                var[...] = new_var
        return out

    def backward(self, dout):
        dx, *grads = residual.residual_block_backward(dout, self.cache)
        for p, g in zip(self._params(), grads):
            p.grad += g
        return dx

    def extra_repr(self) -> str:
        text = f"{self.c_in}, {self.c_out}"
        if self.stride != 1:
            text += f", stride={self.stride}"
        return text + (", projection" if self.has_projection else "")
