"""Layer arithmetic without running a network: receptive fields, output shapes, parameter counts.

Two questions about a stack of layers can be answered with integers alone
(notebook 04):

* :func:`receptive_field`: how many input pixels (along one axis) can
  influence one output unit after each layer, and how far apart neighbouring
  units of that layer sit in the input (the *jump*, the product of strides);
* :func:`layer_table`: the output shape and the number of trainable
  parameters of every layer of a network given as a list of layer specs.

:func:`cnncourse.nn.summary` answers the second question too, by running a
forward pass of zeros through real layers; that needs the weights in memory.
:func:`layer_table` only does arithmetic, so it also prices layers far too big
to build (a dense layer with two billion weights), and it is the reference
answer of exercise 4.2.  Notebook 04 checks the two against each other.
"""
from __future__ import annotations

import math
import re

from .conv import conv_output_size

__all__ = ["receptive_field", "parse_layers", "layer_table", "LAYER_TYPES"]

LAYER_TYPES = ("conv", "pool", "dense", "flatten", "relu")
_KINDS = ("conv", "pool")


# --------------------------------------------------------------------------- receptive fields


def _as_layer(layer, index: int) -> tuple[str, int, int, int]:
    """Normalise ``(kind, k[, stride[, dilation]])``; conv stride defaults to 1, pool stride to k."""
    if isinstance(layer, str):
        return parse_layers(layer)[0]
    if not isinstance(layer, (tuple, list)) or not 2 <= len(layer) <= 4:
        raise ValueError(f"layer {index} must be a tuple (kind, k, stride, dilation), got {layer!r}")
    kind = layer[0]
    if kind not in _KINDS:
        raise ValueError(f"layer {index}: kind must be 'conv' or 'pool', got {kind!r}")
    k = layer[1]
    stride = layer[2] if len(layer) > 2 else (1 if kind == "conv" else k)
    dilation = layer[3] if len(layer) > 3 else 1
    for value, name in ((k, "k"), (stride, "stride"), (dilation, "dilation")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"layer {index} ({kind}): {name} must be an integer >= 1, got {value!r}")
    return kind, k, stride, dilation


def receptive_field(layers) -> list[tuple[int, int]]:
    """Receptive field size and jump after each layer of a stack (along one axis).

    Args:
        layers: a list of ``(kind, k, stride, dilation)`` tuples, ``kind`` being
            ``"conv"`` or ``"pool"`` (they grow the field in the same way);
            ``stride`` and ``dilation`` may be left out (conv stride 1, pool
            stride k, dilation 1).  A string such as ``"conv3, pool2"`` is
            parsed with :func:`parse_layers`.

    Returns:
        list of ``(rf, jump)``, one per layer: ``rf`` input pixels feed one unit
        of that layer, and neighbouring units are ``jump`` input pixels apart.

    With ``r_0 = 1`` and ``j_0 = 1`` (the input itself), a layer with kernel
    ``k``, stride ``s`` and dilation ``d`` spans ``d(k - 1) + 1`` units of the
    layer below, which are ``j_{l-1}`` input pixels apart:

        r_l = r_{l-1} + d (k - 1) j_{l-1},        j_l = s j_{l-1}.

    Padding moves the field but does not change its size.
    """
    if isinstance(layers, str):
        layers = parse_layers(layers)
    rf, jump, out = 1, 1, []
    for index, layer in enumerate(layers):
        _, k, stride, dilation = _as_layer(layer, index)
        rf += dilation * (k - 1) * jump
        jump *= stride
        out.append((rf, jump))
    return out


_TOKEN = re.compile(r"^(conv|pool)(\d+)(?:s(\d+))?(?:d(\d+))?$")


def parse_layers(text: str) -> list[tuple[str, int, int, int]]:
    """Parse ``"conv3, conv3s2, pool2, conv3d2"`` into ``(kind, k, stride, dilation)`` tuples.

    Each comma-separated token is ``conv<k>`` or ``pool<k>``, optionally
    followed by ``s<stride>`` and ``d<dilation>`` (in that order).  A conv's
    stride defaults to 1, a pool's to its size.

    Raises:
        ValueError: an empty list or a token that does not follow the pattern.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string such as 'conv3, pool2', got {type(text).__name__}")
    tokens = [t.strip().lower().replace(" ", "") for t in text.split(",")]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise ValueError("no layers given: write them like 'conv3, conv3, pool2, conv3'")
    layers = []
    for position, token in enumerate(tokens, start=1):
        match = _TOKEN.match(token)
        if not match:
            raise ValueError(f"cannot read layer {position} {token!r}: write conv<k> or pool<k>, optionally "
                             f"followed by s<stride> and d<dilation>, e.g. 'conv3', 'conv3s2', 'conv2d4', 'pool2'")
        kind, k, s, d = match.groups()
        k = int(k)
        stride = int(s) if s else (1 if kind == "conv" else k)
        dilation = int(d) if d else 1
        if min(k, stride, dilation) < 1:
            raise ValueError(f"layer {position} {token!r}: kernel size, stride and dilation must be >= 1")
        layers.append((kind, k, stride, dilation))
    return layers


# --------------------------------------------------------------------------- shapes and parameter counts


def _pair(value, name: str, where: str) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
    return pair


def _spatial(shape, spec: dict, where: str, *, k, default_stride) -> tuple[int, int]:
    if len(shape) != 3:
        raise ValueError(f"{where} needs a (C, H, W) input, got shape {shape}: "
                         f"put conv and pool layers before the first dense layer")
    kh, kw = _pair(k, "k", where)
    sh, sw = _pair(spec.get("stride", default_stride), "stride", where)
    ph, pw = _pair(spec.get("pad", 0), "pad", where)
    dh, dw = _pair(spec.get("dilation", 1), "dilation", where)
    try:
        return (conv_output_size(shape[1], kh, stride=sh, pad=ph, dilation=dh),
                conv_output_size(shape[2], kw, stride=sw, pad=pw, dilation=dw))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} on input {shape}: {err}") from None


def _require(spec: dict, key: str, where: str):
    if key not in spec:
        raise ValueError(f"{where} needs the key {key!r} (got {spec})")
    value = spec[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where}: {key!r} must be a positive integer, got {value!r}")
    return value


def layer_table(input_shape, layers, *, print_table: bool = False) -> list[tuple[tuple[int, ...], int]]:
    """Output shape and parameter count of each layer, by arithmetic alone.

    Args:
        input_shape: ``(C, H, W)`` (channels first, no batch axis) or ``(D,)``
            for a flat input.
        layers: a list of dicts, one per layer:

            * ``{"type": "conv", "filters": F, "k": 5, "stride": 1, "pad": 0,
              "dilation": 1, "groups": 1, "bias": True}``: ``F`` filters of
              shape ``(C/groups, KH, KW)``; ``k``, ``stride``, ``pad`` and
              ``dilation`` may be ints or ``(vertical, horizontal)`` pairs.
              Parameters ``F * (C/groups) * KH * KW`` (+ ``F`` biases).
            * ``{"type": "pool", "k": 2, "stride": k, "pad": 0}``: max or
              average pooling per channel; no parameters.
            * ``{"type": "dense", "units": U, "bias": True}``: flattens its
              input of ``D`` numbers; parameters ``D * U`` (+ ``U``).
            * ``{"type": "flatten"}`` and ``{"type": "relu"}``: no parameters.

        print_table: also print the table with a total line.

    Returns:
        list of ``(output_shape, n_params)``, one per layer, as Python ints
        (exact even for billions of parameters).

    Raises:
        ValueError: an unknown layer type, a missing key, a kernel larger
            than its padded input, a conv after a dense layer, or groups
            that do not divide the channels.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) or (D,) of positive ints, got {tuple(input_shape)}")
    rows = []
    for index, spec in enumerate(layers, start=1):
        if not isinstance(spec, dict) or spec.get("type") not in LAYER_TYPES:
            got = spec.get("type") if isinstance(spec, dict) else spec
            raise ValueError(f"layer {index}: type must be one of {', '.join(LAYER_TYPES)}, got {got!r}")
        kind = spec["type"]
        where = f"layer {index} ({kind})"
        if kind == "conv":
            filters = _require(spec, "filters", where)
            groups = spec.get("groups", 1)
            if "k" not in spec:
                raise ValueError(f"{where} needs the key 'k' (got {spec})")
            if len(shape) == 3 and (shape[0] % groups or filters % groups):
                raise ValueError(f"{where}: groups={groups} must divide the input channels ({shape[0]}) "
                                 f"and the filters ({filters})")
            oh, ow = _spatial(shape, spec, where, k=spec["k"], default_stride=1)
            kh, kw = _pair(spec["k"], "k", where)
            params = filters * (shape[0] // groups) * kh * kw + (filters if spec.get("bias", True) else 0)
            shape = (filters, oh, ow)
        elif kind == "pool":
            if "k" not in spec:
                raise ValueError(f"{where} needs the key 'k' (got {spec})")
            oh, ow = _spatial(shape, spec, where, k=spec["k"], default_stride=spec["k"])
            params, shape = 0, (shape[0], oh, ow)
        elif kind == "dense":
            units = _require(spec, "units", where)
            fan_in = math.prod(shape)
            params = fan_in * units + (units if spec.get("bias", True) else 0)
            shape = (units,)
        elif kind == "flatten":
            params, shape = 0, (math.prod(shape),)
        else:  # relu
            params = 0
        rows.append((shape, params))
    if print_table:
        _print(tuple(int(s) for s in input_shape), layers, rows)
    return rows


def _describe(spec: dict) -> str:
    kind = spec["type"]
    if kind == "conv":
        extra = "".join(f", {key} {spec[key]}" for key in ("stride", "pad", "dilation", "groups") if key in spec)
        bias = "" if spec.get("bias", True) else ", no bias"
        k = f"{spec['k']}x{spec['k']}" if isinstance(spec["k"], int) else "x".join(map(str, spec["k"]))
        return f"conv {spec['filters']} x {k}{extra}{bias}"
    if kind == "pool":
        return f"pool {spec['k']}" + (f", stride {spec['stride']}" if "stride" in spec else "")
    if kind == "dense":
        return f"dense {spec['units']}" + ("" if spec.get("bias", True) else ", no bias")
    return kind


def _print(input_shape, layers, rows) -> None:
    header = ("layer", "output shape", "units", "params")
    body = [("input", str(input_shape), f"{math.prod(input_shape):,}", "")]
    body += [(_describe(spec), str(shape), f"{math.prod(shape):,}", f"{params:,}")
             for spec, (shape, params) in zip(layers, rows)]
    total = ("total", "", "", f"{sum(p for _, p in rows):,}")
    widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(4)]

    def fmt(line):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))

    rule = "-" * len(fmt(header))
    print("\n".join([fmt(header), rule, *map(fmt, body), rule, fmt(total)]))
