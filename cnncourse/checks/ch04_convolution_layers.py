"""Checks for notebook 04 (convolution layers)."""
from __future__ import annotations

import math

import numpy as np

from .. import conv, receptive
from .core import Case, exercise, run_cases

NOTEBOOK = "04_convolution_layers"


# --------------------------------------------------------------------------- 4.1 conv layer forward


def _forward(x, w, b, stride=1, pad=0, *, pad_widths=None):
    if pad_widths is not None:
        x, pad = np.pad(x, ((0, 0), (0, 0), *pad_widths)), 0
    try:
        return conv.conv_forward(x, w, b, stride=stride, pad=pad)[0]
    except ValueError:
        return None


def _cases_4_1():
    rng = np.random.default_rng(401)
    yield "x (1, 3, 5, 5), w (2, 3, 3, 3), pad=1", rng.normal(size=(1, 3, 5, 5)), rng.normal(size=(2, 3, 3, 3)), \
        rng.normal(size=2), {"pad": 1}
    yield "x (1, 2, 6, 7), w (3, 2, 2, 3), stride=2", rng.normal(size=(1, 2, 6, 7)), rng.normal(size=(3, 2, 2, 3)), \
        rng.normal(size=3), {"stride": 2}
    yield "x (2, 2, 7, 6), w (2, 2, 3, 3), stride=2, pad=2", rng.normal(size=(2, 2, 7, 6)), \
        rng.normal(size=(2, 2, 3, 3)), rng.normal(size=2), {"stride": 2, "pad": 2}
    yield "x (3, 1, 4, 4), w (5, 1, 1, 1) (a 1x1 convolution)", rng.normal(size=(3, 1, 4, 4)), \
        rng.normal(size=(5, 1, 1, 1)), rng.normal(size=5), {}
    yield from random_cases_4_1(np.random.default_rng(4011), 3)


def random_cases_4_1(rng, count):
    """``count`` seeded random layers: batch, channels, filters, sizes, stride and padding all drawn."""
    made = 0
    while made < count:
        n, c, f = (int(v) for v in rng.integers(1, 4, size=3))
        kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
        h, w = (int(v) for v in rng.integers(3, 10, size=2))
        stride, pad = int(rng.integers(1, 4)), int(rng.integers(0, 3))
        if kh > h + 2 * pad or kw > w + 2 * pad:
            continue
        made += 1
        yield (f"random case {made}: x ({n}, {c}, {h}, {w}), w ({f}, {c}, {kh}, {kw}), stride={stride}, pad={pad}",
               rng.normal(size=(n, c, h, w)), rng.normal(size=(f, c, kh, kw)), rng.normal(size=f),
               {"stride": stride, "pad": pad})


@exercise("4.1", "conv_layer_forward", notebook=NOTEBOOK,
          forbidden=("cnncourse.conv.conv_forward", "cnncourse.conv.conv_forward_naive"))
def check_conv_layer_forward(fn):
    """``fn(x, w, b, *, stride=1, pad=0)``: (N, C, H, W) x (F, C, KH, KW) + b -> (N, F, OH, OW)."""
    cases = []
    for label, x, w, b, hyper in _cases_4_1():
        stride, pad = hyper.get("stride", 1), hyper.get("pad", 0)
        mistakes = {
            "the bias is missing: add b[f] to every pixel of feature map f": _forward(x, w, None, stride, pad),
            "the kernel is flipped (true convolution); a conv layer cross-correlates":
                _forward(x, w[:, :, ::-1, ::-1], b, stride, pad),
            "padding added on one side only: pad zeros go before AND after each axis (H + 2p)":
                _forward(x, w, b, stride, pad_widths=((pad, 0), (pad, 0))),
            "padding added on one side only (after the image): pad zeros go before AND after each axis (H + 2p)":
                _forward(x, w, b, stride, pad_widths=((0, pad), (0, pad))),
            "off-by-one padding: one zero too many on each side": _forward(x, w, b, stride, pad + 1),
            "the padding is ignored: add `pad` zeros on each side of H and W before sliding":
                _forward(x, w, b, stride, 0) if pad else None,
            "the stride is ignored: consecutive outputs must move the window `stride` pixels":
                _forward(x, w, b, 1, pad),
            "only the first input channel is used: each filter sums over all C input channels":
                _forward(x[:, :1], w[:, :1], b, stride, pad),
        }
        if w.shape[0] == w.shape[1]:
            mistakes["w is indexed as w[c, f] instead of w[f, c] (filters come first)"] = \
                _forward(x, w.transpose(1, 0, 2, 3), b, stride, pad)
        mistakes = {cause: answer for cause, answer in mistakes.items() if answer is not None}
        cases.append(Case(label, (x, w, b), hyper, expected=_forward(x, w, b, stride, pad), mistakes=mistakes))
    return run_cases("4.1", "conv_layer_forward", fn, cases)


# --------------------------------------------------------------------------- 4.2 shape / parameter calculator


def _table_with(input_shape, layers, mistake: str | None = None):
    """layer_table, or the table a particular mistake produces (None: that mistake gives no table)."""
    try:
        if mistake is None:
            return receptive.layer_table(input_shape, layers)
        if mistake == "no bias":
            return receptive.layer_table(input_shape, [dict(s, bias=False) if s["type"] in ("conv", "dense") else s
                                                        for s in layers])
        if mistake == "pool stride 1":
            return receptive.layer_table(input_shape, [dict(s, stride=s.get("stride", 1)) if s["type"] == "pool" else s
                                                        for s in layers])
        if mistake == "stride ignored":
            return receptive.layer_table(input_shape, [dict(s, stride=1) if s["type"] == "conv" else s for s in layers])
    except ValueError:
        return None
    # mistakes the package cannot express with a layer list: recompute by hand
    shape, rows = tuple(input_shape), []
    for spec in layers:
        kind = spec["type"]
        if kind in ("conv", "pool"):
            k, stride, pad = spec["k"], spec.get("stride", 1 if kind == "conv" else spec["k"]), spec.get("pad", 0)
            padded = pad if mistake == "pad once" else 2 * pad
            if mistake == "no floor":  # (n + 2p - k) / s + 1 rounded up instead of down
                size = [math.ceil((n + padded - k) / stride) + 1 for n in shape[1:]]
            else:
                size = [(n + padded - k) // stride + 1 for n in shape[1:]]
            if min(size) < 1:
                return None
            if kind == "conv":
                c_in = 1 if mistake == "no input channels" else shape[0]
                params = spec["filters"] * c_in * k * k + (spec["filters"] if spec.get("bias", True) else 0)
                shape = (spec["filters"], *size)
            else:
                params, shape = 0, (shape[0], *size)
        elif kind == "dense":
            forgot_channels = mistake == "dense without channels" and len(shape) == 3
            fan_in = math.prod(shape[1:]) if forgot_channels else math.prod(shape)
            params = fan_in * spec["units"] + (spec["units"] if spec.get("bias", True) else 0)
            shape = (spec["units"],)
        elif kind == "flatten":
            params, shape = 0, (math.prod(shape),)
        else:
            params = 0
        rows.append((shape, params))
    return rows


_MISTAKES_4_2 = {
    "no bias": "biases are not counted: each conv filter and each dense unit has one",
    "no input channels": "a conv filter has C x k x k weights (it spans all C input channels), not k x k",
    "pad once": "padding counted once: p zeros go on each side, so the padded size is n + 2p",
    "stride ignored": "the conv stride is ignored: output size floor((n + 2p - k)/s) + 1",
    "no floor": "rounding up: the output size is floor((n + 2p - k)/s) + 1 (a window must fit entirely)",
    "pool stride 1": "a pooling window moves by its own size by default (stride = k), not by 1",
    "dense without channels": "a dense layer after a conv sees all C x H x W numbers (flatten every channel)",
}

_NETS_4_2 = (
    ("CPSC 340 net", (3, 28, 28), [
        {"type": "conv", "filters": 32, "k": 5, "stride": 1, "pad": 0},
        {"type": "pool", "k": 2},
        {"type": "dense", "units": 128},
        {"type": "dense", "units": 10},
    ]),
    ("LWLS Example 6.3", (1, 28, 28), [
        {"type": "conv", "filters": 4, "k": 5, "stride": 1, "pad": 2},
        {"type": "conv", "filters": 8, "k": 5, "stride": 2, "pad": 2},
        {"type": "conv", "filters": 12, "k": 4, "stride": 2, "pad": 1},
        {"type": "dense", "units": 200},
        {"type": "dense", "units": 10},
    ]),
    ("odd sizes", (2, 13, 11), [
        {"type": "conv", "filters": 6, "k": 3, "stride": 2, "pad": 1},
        {"type": "pool", "k": 2},
        {"type": "conv", "filters": 5, "k": 2, "stride": 1, "pad": 0, "bias": False},
        {"type": "dense", "units": 7},
    ]),
)


def _last_row(fn):
    """Wrap the student's function: check the table's form, return its last row as (shape, n_params)."""

    def wrapped(input_shape, layers):
        rows = fn(input_shape, layers)
        if rows is None:
            return None
        if not isinstance(rows, (list, tuple)) or len(rows) != len(layers):
            n = len(rows) if isinstance(rows, (list, tuple)) else type(rows).__name__
            raise ValueError(f"expected a list with one (output_shape, n_params) pair per layer "
                             f"({len(layers)} layers), got {n}")
        last = rows[-1]
        if not isinstance(last, (list, tuple)) or len(last) != 2:
            raise ValueError(f"each row must be a pair (output_shape, n_params), got {last!r}")
        shape, params = last
        if not isinstance(shape, (list, tuple)):
            raise TypeError(f"output_shape must be a tuple such as (128,) or (32, 24, 24), got {shape!r}")
        return np.asarray(tuple(shape), dtype=float), params

    return wrapped if callable(fn) else fn


def _layer_text(spec: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in spec.items() if k != "type").join((f"{spec['type']}(", ")"))


def random_nets_4_2(rng, count):
    """``count`` seeded random networks: conv and pool layers of random sizes, then a dense layer."""
    made = 0
    while made < count:
        input_shape = (int(rng.integers(1, 4)), int(rng.integers(8, 20)), int(rng.integers(8, 20)))
        layers = []
        for _ in range(int(rng.integers(2, 4))):
            if rng.random() < 0.7:
                spec = {"type": "conv", "filters": int(rng.integers(2, 9)), "k": int(rng.integers(1, 6)),
                        "stride": int(rng.integers(1, 3)), "pad": int(rng.integers(0, 3))}
                if rng.random() < 0.3:
                    spec["bias"] = False
            else:
                spec = {"type": "pool", "k": int(rng.integers(2, 4))}
                if rng.random() < 0.5:
                    spec["stride"] = int(rng.integers(1, 3))
            layers.append(spec)
        layers.append({"type": "dense", "units": int(rng.integers(2, 12))})
        if not any(spec["type"] == "conv" for spec in layers):
            continue
        try:
            receptive.layer_table(input_shape, layers)
        except ValueError:  # a layer with no valid position: draw again
            continue
        made += 1
        yield f"random net {made}", input_shape, layers


@exercise("4.2", "layer_shapes", notebook=NOTEBOOK, forbidden=("cnncourse.receptive.layer_table",))
def check_layer_shapes(fn):
    """``fn(input_shape, layers) -> [(output_shape, n_params), ...]``, checked one layer at a time.

    The fixed networks are checked after every layer; a few seeded random networks, as a whole.
    """
    cases = []
    nets = [(name, shape, layers, range(1, len(layers) + 1)) for name, shape, layers in _NETS_4_2]
    nets += [(name, shape, layers, (len(layers),))
             for name, shape, layers in random_nets_4_2(np.random.default_rng(4021), 3)]
    for name, input_shape, layers, depths in nets:
        for depth in depths:
            prefix = layers[:depth]
            shape, params = _table_with(input_shape, prefix)[-1]
            mistakes = {}
            for key, cause in _MISTAKES_4_2.items():
                table = _table_with(input_shape, prefix, key)
                if table is not None:
                    wrong_shape, wrong_params = table[-1]
                    mistakes[cause] = (np.asarray(wrong_shape, dtype=float), wrong_params)
            if name.startswith("random"):  # nobody has seen this net: spell it all out
                where = f"layers {', '.join(_layer_text(spec) for spec in layers)}, the last layer"
            else:
                where = f"layer {depth} of {len(layers)} {_layer_text(prefix[-1])}"
            label = (f"{name}, input {input_shape}, {where} "
                     f"(compared: output 1 = its output shape, output 2 = its parameter count)")
            cases.append(Case(label, (input_shape, prefix), expected=(np.asarray(shape, dtype=float), params),
                              mistakes=mistakes))
    return run_cases("4.2", "layer_shapes", _last_row(fn), cases)
