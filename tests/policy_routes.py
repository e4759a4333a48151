"""Routes to an exercise's answer that are not the student's own code, and honest solutions (test helper).

Used by ``tests/test_policy.py`` (the in-notebook check) and
``tests/test_policy_grading.py`` (the sandboxed grader):

* :func:`package_routes` builds them mechanically: every public function (or
  class) of the package's computing modules that accepts the exercise's inputs;
* :func:`deny_routes`: every denylisted third-party function, called with them;
* :data:`ADAPTED`: routes that need a line of glue (a one-row image for 1.1,
  a cache for a backward pass, the checks' own helpers ...);
* :func:`reference_solutions` (the course notebooks' solutions) and
  :data:`HONEST`: solutions that must keep full marks.
"""
from __future__ import annotations

import copy
import importlib
import re
import signal
import warnings
from pathlib import Path

import numpy as np

from cnncourse.checks import EXERCISES, policy
from cnncourse.grading import notebook as nbio

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# Functions that try to reach a GPU or download nothing useful here: they are refused like any other
# package function, but probing them with an exercise's inputs is slow.
_SKIP_PROBE = re.compile(r"cuda|torch|gpu", re.IGNORECASE)


def first_case(number: str):
    """(args, kwargs) of the first call the exercise's check makes."""
    seen = {}

    def recorder(*args, **kwargs):
        seen.setdefault("call", (copy.deepcopy(args), copy.deepcopy(kwargs)))
        raise NotImplementedError

    with policy.grading():
        EXERCISES[number].check(recorder)
    return seen["call"]


def _runs_python(obj) -> bool:
    """Does calling ``obj`` run any Python code of the package (a class may be pure data)?"""
    if not isinstance(obj, type):
        return True
    for klass in obj.__mro__:
        if klass.__module__.startswith("cnncourse.") and any(
                k in vars(klass) for k in ("__init__", "__new__", "__post_init__", "__call__")):
            return True
    return False


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout()


def package_routes(number: str) -> list[str]:
    """Dotted names of the public package functions and classes that accept the exercise's inputs."""
    args, kwargs = first_case(number)
    routes = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for module_name in policy.computing_modules():
            module = importlib.import_module(module_name)
            for name, obj in sorted(vars(module).items()):
                dotted = f"{module_name}.{name}"
                if name.startswith("_") or not callable(obj) or getattr(obj, "__module__", None) != module_name \
                        or _SKIP_PROBE.search(dotted) or not _runs_python(obj):
                    continue
                if policy.policy_for(number).allows({dotted}):
                    continue
                signal.setitimer(signal.ITIMER_REAL, 3)
                try:
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore")
                        obj(*copy.deepcopy(args), **copy.deepcopy(kwargs))
                except BaseException:  # does not accept these inputs: not a route
                    continue
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                routes.append(dotted)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return routes


def deny_routes(number: str) -> list[str]:
    """The exercise's denied third-party targets ("module:attr.path")."""
    return list(policy.policy_for(number).deny_targets)


def call_expression(target: str) -> str:
    """Python expression naming a target: ``scipy.signal:correlate2d`` -> ``scipy.signal.correlate2d``."""
    module, _, path = target.partition(":")
    return f"importlib.import_module({module!r}).{path}" if path else target


# Routes with glue: (exercise, source of a function named {name}).
ADAPTED = [
    ("1.1", "def {name}(x, w, boundary='zero'):\n"
            "    return cc.conv.correlate2d(np.pad(np.asarray(x, float), len(w) // 2)[None], np.asarray(w)[None],"
            " mode='valid')[0]\n"),
    ("1.1", "def {name}(x, w, boundary='zero'):\n"
            "    modes = {{'zero': 'constant', 'replicate': 'nearest', 'mirror': 'mirror', 'periodic': 'wrap'}}\n"
            "    return scipy.ndimage.correlate1d(np.asarray(x, float), w, mode=modes[boundary])\n"),
    ("1.1", "def {name}(x, w, boundary='zero'):\n"
            "    f = getattr(getattr(cc, 'sig' + 'nal'), 'correlate' + '1d')\n"
            "    try:\n        return f(x, w, mode='same', boundary=boundary)\n"
            "    except BaseException:\n        return np.zeros(len(x))\n"),
    ("1.2", "def {name}(w, n):\n"
            "    return np.stack([cc.signal.correlate1d(c, w, mode='same') for c in np.eye(n)], axis=1)\n"),
    ("1.2", "def {name}(w, n):\n    return scipy.linalg.convolution_matrix(w, n, 'same')\n"),
    ("2.1", "def {name}(h):\n    return cc.filters.forward_difference(h), cc.filters.centred_difference(h), "
            "cc.filters.second_difference(h)\n"),
    ("2.3", "def {name}(x, w):\n    return scipy.ndimage.correlate1d(x, w, mode='wrap')\n"),
    ("3.1", "def {name}(x, w, *, pad=0, stride=1, dilation=1):\n"
            "    return scipy.signal.correlate2d(np.pad(x, pad), w, mode='valid')[::stride, ::stride]\n"),
    ("3.1", "def {name}(x, w, *, pad=0, stride=1, dilation=1):\n"
            "    return cc.conv.correlate2d(np.pad(x, pad), w, mode='valid', stride=stride, dilation=dilation)\n"),
    ("4.1", "def {name}(x, w, b, *, stride=1, pad=0):\n"
            "    return cc.fastconv.rows_forward(x, w, b, stride, pad, 1)[0]\n"),
    ("4.2", "def {name}(input_shape, layers):\n    return cc.receptive.layer_table(input_shape, layers)\n"),
    ("5.1", "def {name}(x, kh, kw, *, stride=1, pad=0):\n    return cc.im2col.im2col(x, kh, kw, stride=stride, pad=pad)\n"),
    ("5.2", "def {name}(i, x, w, out):\n"
            "    if i < len(out):\n        out[i] = cc.signal.correlate1d(x[i:i + len(w)], w, mode='valid')[0]\n"),
    ("5.2", "def {name}(i, x, w, out):\n"
            "    if i < len(out):\n        out[i] = np.correlate(x[i:i + len(w)], w, 'valid')[0]\n"),
    ("6.1", "def {name}(x, size=2, stride=None):\n    return cc.pool.max_pool_forward(x, size=size, stride=stride)[0]\n"),
    ("6.1", "def {name}(x, size=2, stride=None):\n"
            "    s = size if stride is None else stride\n"
            "    m = scipy.ndimage.maximum_filter(x, size=(1, 1, size, size), origin=(0, 0, -(size // 2), -(size // 2)))\n"
            "    return m[:, :, :x.shape[2] - size + 1:s, :x.shape[3] - size + 1:s]\n"),
    ("6.2", "def {name}(x, size=2, stride=None):\n    return cc.pool.avg_pool_forward(x, size=size, stride=stride)[0]\n"),
    ("7.1", "def {name}(dy, x, w):\n"
            "    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)\n"
            "    y = torch.nn.functional.conv1d(xt[None, None], wt[None, None])[0, 0]\n"
            "    (y * torch.tensor(dy)).sum().backward()\n"
            "    return xt.grad.numpy(), wt.grad.numpy(), float(np.sum(dy))\n"),
    ("7.2", "def {name}(dout, x, w, *, stride=1, pad=0):\n"
            "    _, cache = cc.conv.conv_forward(x, w, np.zeros(len(w)), stride=stride, pad=pad)\n"
            "    return cc.conv.conv_backward(dout, cache)\n"),
    ("7.3", "def {name}(dout, x, size=2):\n"
            "    _, cache = cc.pool.max_pool_forward(x, size=size)\n    return cc.pool.max_pool_backward(dout, cache)\n"),
    ("7.4", "def {name}(f, x, h=1e-5):\n    return cc.gradcheck.numerical_gradient(f, np.array(x, float), h=h)\n"),
    ("7.4", "def {name}(f, x, h=1e-5):\n    return scipy.optimize.approx_fprime(np.ravel(x), lambda v: f(v.reshape(np.shape(x))), h)"
            ".reshape(np.shape(x))\n"),
    ("8.1", "def {name}(logits, y):\n    return cc.losses.softmax_cross_entropy(logits, y)\n"),
    ("8.1", "def {name}(logits, y):\n"
            "    p = scipy.special.softmax(logits, axis=1)\n    n = len(y)\n"
            "    d = p.copy()\n    d[np.arange(n), y] -= 1\n"
            "    return float(-np.log(p[np.arange(n), y]).mean()), d / n\n"),
    ("8.2", "def {name}(w, dw, m, v, t, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):\n"
            "    return cc.checks.ch08_training._adam(w, dw, m, v, t, lr, beta1, beta2, eps)\n"),
    ("8.2", "def {name}(w, dw, m, v, t, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):\n"
            "    p = cc.nn.Parameter(np.array(w, float))\n    p.grad[...] = dw\n"
            "    opt = cc.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)\n"
            "    opt.t = t - 1\n    opt.state[0]['exp_avg'] = m.copy()\n    opt.state[0]['exp_avg_sq'] = v.copy()\n"
            "    opt.step()\n    return p.value, opt.state[0]['exp_avg'], opt.state[0]['exp_avg_sq']\n"),
    ("9.1", "def {name}(x, gamma, beta, eps=1e-5):\n"
            "    return cc.batchnorm.spatial_batchnorm_forward(x, gamma, beta, training=True)[0]\n"),
    ("9.1", "def {name}(x, gamma, beta, eps=1e-5):\n"
            "    return cc.checks.ch09_normalisation._wrong_axes_forward(x, gamma, beta, (0, 2, 3), eps)\n"),
    ("9.2", "def {name}(dout, x, gamma, eps=1e-5):\n"
            "    _, cache, _, _ = cc.batchnorm.spatial_batchnorm_forward(x, gamma, np.zeros_like(gamma), training=True)\n"
            "    return cc.batchnorm.spatial_batchnorm_backward(dout, cache)\n"),
    ("10.1", "def {name}(x, w1, w2):\n"
             "    m, _ = cc.checks.ch10_resnets._main_path(x, w1, w2)\n    return np.maximum(m + x, 0)\n"),
    ("10.2", "def {name}(dout, x, w1, w2):\n    return cc.checks.ch10_resnets._reference_backward(dout, x, w1, w2)[0]\n"),
]


# Honest solutions that must keep full marks (beyond the notebooks' own): (exercise, source).
HONEST = [
    ("1.1", "def {name}(x, w, boundary='zero'):\n"
            "    x, w = np.asarray(x, dtype=float), np.asarray(w, dtype=float)\n"
            "    modes = {{'zero': 'constant', 'replicate': 'edge', 'mirror': 'reflect', 'periodic': 'wrap'}}\n"
            "    padded = np.pad(x, len(w) // 2, mode=modes[boundary])\n"
            "    return np.array([padded[i:i + len(w)] @ w for i in range(len(x))])\n"),
    ("1.1", "def {name}(x, w, boundary='zero'):\n"
            "    m = len(w) // 2\n    p = cc.signal.pad1d(np.asarray(x, float), m, m, boundary)\n"
            "    return np.lib.stride_tricks.sliding_window_view(p, len(w)) @ w\n"),
    ("3.1", "def {name}(x, w, *, pad=0, stride=1, dilation=1):\n"
            "    xp = np.pad(np.asarray(x, float), pad)\n    kh, kw = w.shape\n"
            "    win = np.lib.stride_tricks.sliding_window_view(xp, (dilation * (kh - 1) + 1, dilation * (kw - 1) + 1))\n"
            "    win = win[::stride, ::stride, ::dilation, ::dilation]\n"
            "    return np.einsum('ijab,ab->ij', win, w)\n"),
    ("4.1", "def {name}(x, w, b, *, stride=1, pad=0):\n"
            "    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))\n    F, C, KH, KW = w.shape\n"
            "    win = np.lib.stride_tricks.sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::stride, ::stride]\n"
            "    return np.einsum('ncijab,fcab->nfij', win, w) + b[None, :, None, None]\n"),
    ("6.2", "def _my_windows(x, size, stride):\n"
            "    return np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]\n\n"
            "def {name}(x, size=2, stride=None):\n"
            "    return _my_windows(np.asarray(x, float), size, size if stride is None else stride).mean(axis=(-2, -1))\n"),
    ("7.1", "def {name}(dy, x, w):\n"
            "    return np.convolve(dy, w, 'full'), cc.signal.correlate1d(x, dy, mode='valid'), float(np.sum(dy))\n"),
    ("10.2", "def _my_block(x, w1, w2):\n"
             "    a, c1 = cc.conv.conv_forward(x, w1, None, pad=1)\n    h = np.maximum(a, 0)\n"
             "    m, c2 = cc.conv.conv_forward(h, w2, None, pad=1)\n    return a, c1, m, c2\n\n"
             "def {name}(dout, x, w1, w2):\n"
             "    a, c1, m, c2 = _my_block(x, w1, w2)\n    ds = dout * (m + x > 0)\n"
             "    dh, dw2, _ = cc.conv.conv_backward(ds, c2)\n"
             "    dxm, dw1, _ = cc.conv.conv_backward(dh * (a > 0), c1)\n    return dxm + ds, dw1, dw2\n"),
]


def reference_solutions() -> dict[str, str]:
    """Exercise -> source of the cell that defines its function in the course notebook (the solution)."""
    out = {}
    for ex in EXERCISES.values():
        path = NOTEBOOKS / f"{ex.notebook}.ipynb"
        if not path.exists():
            continue
        nb = nbio.load(path)
        for _, src in nbio.code_cells(nb):
            if nbio.defines(src, ex.function):
                out[ex.number] = nbio.strip_magics(src)
                break
    return out


def define(source: str, name: str, old_name: str | None = None) -> str:
    """``source`` with its function named ``name``: a template's {name}, or a solution's own name replaced."""
    if old_name is None:
        return source.format(name=name)
    return re.sub(rf"\bdef\s+{re.escape(old_name)}\s*\(", f"def {name}(", source)
