"""Gradient checking: compare a backward pass with centred finite differences.

The centred difference ``(f(x + h) - f(x - h)) / 2h`` has error ``O(h^2)``
(notebook 02); in float64 with ``h = 1e-5`` it agrees with a correct analytic
gradient to about 1e-8 relative error or better.  A bug (a missing transpose, a
forgotten ``1/N``, a wrong mask) shows up as an error near 1.

For a layer with output ``out = f(x)`` and an upstream gradient ``dout`` the
quantity checked is ``d/dx sum(f(x) * dout)``, which is exactly what
``backward(dout, cache)`` must return.  Always check in float64: float32
rounding alone gives errors around 1e-3.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field

import numpy as np

from .backend import get_array_module, to_numpy

__all__ = ["numerical_gradient", "rel_error", "grad_check", "GradCheckResult", "GradCheckEntry"]

_TINY = np.finfo(np.float64).tiny


def numerical_gradient(f, x, dout=None, *, h: float = 1e-5):
    """Centred-difference gradient of ``sum(f(x) * dout)`` (or ``sum(f(x))``) with respect to ``x``.

    Each element of ``x`` is nudged by ``+h`` and ``-h`` **in place** (so
    ``f`` sees the change through any reference it holds) and restored
    afterwards -- ``x`` is unchanged on return, even if ``f`` raises.

    Args:
        f: function of ``x`` returning an array (or a scalar).
        x: float array, modified temporarily; float64 recommended.
        dout: weights for the outputs, shape of ``f(x)``; None means all ones
            (the gradient of ``sum(f(x))``, i.e. of ``f`` itself for a scalar).
        h: step size.

    Returns:
        grad: same shape, dtype and device as ``x``.

    Cost: two calls of ``f`` per element of ``x``; use small inputs.
    """
    if not hasattr(x, "dtype") or x.dtype.kind != "f":
        raise TypeError(f"x must be a float array that can be perturbed in place, got {type(x).__name__}"
                        f"{' of dtype ' + str(x.dtype) if hasattr(x, 'dtype') else ''}")
    if x.dtype != np.float64:
        warnings.warn(f"numerical_gradient on {x.dtype} data: rounding dominates; use float64", stacklevel=2)
    xp = get_array_module(x, dout)

    def objective():
        out = f(x)
        if dout is None:
            return float(xp.sum(out))
        return float(xp.sum(out * dout))

    grad = xp.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx].item()
        try:
            x[idx] = old + h
            plus = objective()
            x[idx] = old - h
            minus = objective()
        finally:
            x[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b) -> float:
    """Relative error ``max|a - b| / max(|a| + |b|)``, scaled by the largest magnitude.

    Using the largest magnitude (not element by element) keeps gradients that
    are legitimately close to zero from looking wrong.  Guide in float64:
    < 1e-7 correct, 1e-7..1e-4 suspicious (or a kink such as ReLU at 0 nearby),
    > 1e-4 almost surely a bug.  Two all-zero arrays give 0.
    """
    a = to_numpy(a).astype(np.float64)
    b = to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs arrays of the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a) + np.abs(b))), _TINY)
    return float(np.max(np.abs(a - b))) / scale


@dataclass
class GradCheckEntry:
    """The comparison for one input: numerical ("expected") vs backward ("got")."""

    name: str
    rel_error: float
    worst_index: tuple
    expected: float
    got: float
    ok: bool
    problem: str = ""

    def line(self) -> str:
        if self.problem:
            return f"  {self.name}: FAIL  {self.problem}"
        status = "ok  " if self.ok else "FAIL"
        return (
            f"  {self.name}: {status} rel error {self.rel_error:.1e}; worst at {self.worst_index}: "
            f"expected {self.expected:.6g}, got {self.got:.6g}"
        )


@dataclass
class GradCheckResult:
    """Outcome of :func:`grad_check`; ``ok`` is True when every input passed."""

    entries: list[GradCheckEntry] = field(default_factory=list)
    tol: float = 1e-6

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        head = f"grad_check: {'OK' if self.ok else 'FAILED'} (tolerance {self.tol:.0e})"
        return "\n".join([head, *(e.line() for e in self.entries)])

    __str__ = __repr__


def _failed(name, problem):
    return GradCheckEntry(name, float("inf"), (), float("nan"), float("nan"), False, problem)


def _input_names(forward, n):
    try:
        params = [p.name for p in inspect.signature(forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"input {i}" for i in range(n)]


def grad_check(forward, backward, *inputs, h: float = 1e-5, seed: int = 0, tol: float = 1e-6,
               verbose: bool = False) -> GradCheckResult:
    """Check ``backward`` against numerical gradients of ``forward``, input by input.

    Runs ``out, cache = forward(*inputs)``, draws a random ``dout`` (seeded),
    gets ``backward(dout, cache)`` and compares each returned gradient with
    :func:`numerical_gradient`.  Hyper-parameters go in with a lambda or
    ``functools.partial``; a random layer must reuse one seed per call, e.g.
    ``lambda x: dropout_forward(x, p=0.5, rng=np.random.default_rng(0))``.

    Args:
        forward: ``forward(*inputs) -> (out, cache)``.
        backward: ``backward(dout, cache) -> grad`` or a tuple of gradients,
            one per input (None for an input without one, e.g. ``b=None``).
        *inputs: the arrays; checked on float64 copies (the originals are
            untouched).  Non-array inputs (None, numbers) pass through unchecked.
        h: finite-difference step.
        seed: seed of the random ``dout``.
        tol: largest relative error that passes.
        verbose: also print the report.

    Returns:
        A :class:`GradCheckResult`: ``.ok``, ``.entries`` (one per checked
        input: rel error, worst element's index, expected vs got) and a
        readable repr, e.g.::

            grad_check: OK (tolerance 1e-06)
              x: ok   rel error 2.1e-11; worst at (0, 1, 2, 3): expected 0.4311, got 0.4311
    """
    arrays = [
        None if inp is None or not hasattr(inp, "shape") else get_array_module(inp).array(inp, dtype=np.float64)
        for inp in inputs
    ]
    args = [a if a is not None else inp for a, inp in zip(arrays, inputs)]
    out, cache = forward(*args)
    xp = get_array_module(out)
    rng = np.random.default_rng(seed)
    dout = xp.asarray(rng.standard_normal(np.shape(out)))
    grads = backward(dout, cache)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) < len(inputs):
        raise ValueError(f"backward returned {len(grads)} gradient(s) for {len(inputs)} input(s)")

    result = GradCheckResult(tol=tol)
    for name, a, g in zip(_input_names(forward, len(inputs)), arrays, grads):
        if a is None:
            continue
        if g is None:
            result.entries.append(_failed(name, "backward returned None"))
        elif tuple(np.shape(g)) != tuple(a.shape):
            result.entries.append(_failed(name, f"gradient shape {tuple(np.shape(g))} != input shape {tuple(a.shape)}"))
        else:
            expected = to_numpy(numerical_gradient(lambda _: forward(*args)[0], a, dout, h=h))
            got = to_numpy(g).astype(np.float64)
            err = rel_error(expected, got)
            worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(expected - got))), expected.shape))
            entry = GradCheckEntry(name, err, worst, float(expected[worst]), float(got[worst]), ok=err <= tol)
            result.entries.append(entry)
    if verbose:
        print(result)
    return result
