"""Optimisers: SGD (momentum, Nesterov), RMSprop, Adagrad and Adam.

Each optimiser takes the parameters of a model (``model.parameters()``, or
the model itself) and, on :meth:`step`, updates every ``p.value`` in place
from ``p.grad``.  The update rules follow ``torch.optim`` exactly (same
defaults, same placement of ``eps``, same first momentum step), so a test can
compare the two step for step.  Notation in the docstrings: ``θ`` a
parameter, ``g = ∇θ L + λ θ`` its gradient plus L2 weight decay ``λ``, ``η``
the learning rate, ``t = 1, 2, ...`` the step number.

Implementation: optimiser state (velocities, running averages) is allocated
once, on the first step, next to its parameter (same device and dtype), and
every update writes into existing arrays -- no new arrays per step beyond one
scratch buffer per parameter.
"""
from __future__ import annotations

from .backend import get_array_module

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adam"]


class Optimizer:
    """Base class: holds the parameter list, per-parameter state and the step count."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        if hasattr(params, "parameters"):
            params = params.parameters()
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimiser got no parameters (an empty model or an exhausted generator?)")
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.t = 0  # steps taken
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Set every parameter gradient to zero (gradients accumulate in backward)."""
        for p in self.params:
            p.grad[...] = 0

    def _buffer(self, k: int, name: str, like):
        """Per-parameter state array, zero-initialised on first use (same shape/dtype/device)."""
        state = self.state[k]
        if name not in state:
            state[name] = get_array_module(like).zeros_like(like)
        return state[name]

    def _gradient(self, k: int, p):
        """``g = grad + weight_decay * value``, in the scratch buffer (``p.grad`` itself is not touched)."""
        if not self.weight_decay:
            return p.grad
        xp = get_array_module(p.value)
        g = self._buffer(k, "scratch_g", p.value)
        xp.multiply(p.value, self.weight_decay, out=g)
        g += p.grad
        return g

    def step(self) -> None:
        self.t += 1
        for k, p in enumerate(self.params):
            self._update(k, p, self._gradient(k, p))

    def _update(self, k: int, p, g) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in vars(self).items() if k not in ("params", "state", "t"))
        return f"{type(self).__name__}({hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Plain: ``θ ← θ - η g``.  With momentum ``μ > 0`` (``torch.optim.SGD``,
    dampening 0): a velocity ``b`` with ``b_1 = g_1`` on the first step and

        ``b_t = μ b_{t-1} + g_t``,
        ``θ ← θ - η b_t``                  (classical momentum),
        ``θ ← θ - η (g_t + μ b_t)``        (``nesterov=True``).

    (The textbook form ``v ← μ v - η g; θ ← θ + v`` is the same update for a
    constant learning rate, with ``v = -η b``.)
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr, weight_decay)
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov

    def _update(self, k, p, g):
        xp = get_array_module(p.value)
        if self.momentum:
            first = "velocity" not in self.state[k]
            b = self._buffer(k, "velocity", p.value)
            if first:
                b[...] = g
            else:
                b *= self.momentum
                b += g
            if self.nesterov:
                step = self._buffer(k, "scratch", p.value)
                xp.multiply(b, self.momentum, out=step)
                step += g
                g = step
            else:
                g = b
        step = self._buffer(k, "scratch", p.value)
        xp.multiply(g, self.lr, out=step)
        p.value -= step


class RMSprop(Optimizer):
    """RMSprop: divide each gradient by a running root-mean-square of its past values.

        ``s_t = α s_{t-1} + (1 - α) g_t²``      (``s_0 = 0``),
        ``θ ← θ - η g_t / (sqrt(s_t) + ε)``.

    As in ``torch.optim.RMSprop``, ``ε`` is added *after* the square root
    and there is no bias correction.
    """

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha, self.eps = alpha, eps

    def _update(self, k, p, g):
        xp = get_array_module(p.value)
        s = self._buffer(k, "square_avg", p.value)
        tmp = self._buffer(k, "scratch", p.value)
        s *= self.alpha
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.alpha
        s += tmp
        xp.sqrt(s, out=tmp)
        tmp += self.eps
        xp.divide(g, tmp, out=tmp)
        tmp *= self.lr
        p.value -= tmp


class Adagrad(Optimizer):
    """Adagrad: per-coordinate step sizes shrinking with the sum of squared gradients.

        ``G_t = G_{t-1} + g_t²``     (``G_0 = 0``),
        ``θ ← θ - η g_t / (sqrt(G_t) + ε)``

    (``torch.optim.Adagrad`` with ``lr_decay = 0``, ``initial_accumulator_value = 0``).
    """

    def __init__(self, params, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.eps = eps

    def _update(self, k, p, g):
        xp = get_array_module(p.value)
        G = self._buffer(k, "sum", p.value)
        tmp = self._buffer(k, "scratch", p.value)
        xp.multiply(g, g, out=tmp)
        G += tmp
        xp.sqrt(G, out=tmp)
        tmp += self.eps
        xp.divide(g, tmp, out=tmp)
        tmp *= self.lr
        p.value -= tmp


class Adam(Optimizer):
    """Adam: momentum on the gradient and RMSprop scaling, both bias-corrected.

        ``m_t = β1 m_{t-1} + (1 - β1) g_t``,
        ``v_t = β2 v_{t-1} + (1 - β2) g_t²``            (``m_0 = v_0 = 0``),
        ``θ ← θ - η/(1 - β1^t) · m_t / (sqrt(v_t) / sqrt(1 - β2^t) + ε)``.

    This is ``torch.optim.Adam``'s arrangement (``ε`` added after the
    bias-corrected square root); ``weight_decay`` is L2 added to the
    gradient (Adam, not AdamW).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas, self.eps = (b1, b2), eps

    def _update(self, k, p, g):
        xp = get_array_module(p.value)
        b1, b2 = self.betas
        m = self._buffer(k, "exp_avg", p.value)
        v = self._buffer(k, "exp_avg_sq", p.value)
        tmp = self._buffer(k, "scratch", p.value)
        m *= b1
        xp.multiply(g, 1 - b1, out=tmp)
        m += tmp
        v *= b2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        bias1 = 1 - b1 ** self.t
        bias2_sqrt = (1 - b2 ** self.t) ** 0.5
        xp.sqrt(v, out=tmp)
        tmp /= bias2_sqrt
        tmp += self.eps
        xp.divide(m, tmp, out=tmp)
        tmp *= self.lr / bias1
        p.value -= tmp
