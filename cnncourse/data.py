"""Offline data sets for the course: nothing is ever downloaded.

* :func:`make_signal_classes`: the 3-class 1D signal problem of notebook 02.
* :func:`load_digits`: the 8x8 handwritten digits shipped with scikit-learn
  (1,797 images), split into train/validation/test (notebook 08 onwards).
* :func:`batches`: mini-batches of an ``(X, y)`` pair, shuffled per epoch.
* :func:`shift_images`, :func:`random_shifts`: translate images by whole
  pixels (data augmentation for the digits, notebook 08).
* :func:`load_image`: a test image bundled with scikit-image (``camera``,
  ``astronaut``, ``coins`` ...), gray or RGB, in ``[0, 1]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .backend import get_array_module
from .filters import gaussian

__all__ = ["make_signal_classes", "SIGNAL_CLASS_NAMES", "Digits", "load_digits", "batches", "shift_images",
           "random_shifts", "IMAGE_NAMES", "load_image"]

SIGNAL_CLASS_NAMES = ("smooth", "small", "spiky")


def _smooth_noise(rng, n_samples: int, length: int, amplitude: float) -> np.ndarray:
    """Random smooth curves: white noise blurred by a wide Gaussian, scaled to ``amplitude``."""
    kernel = gaussian(sigma=3.0, normalize=True)
    noise = rng.normal(size=(n_samples, length + len(kernel) - 1))
    smooth = np.stack([np.convolve(row, kernel, mode="valid") for row in noise])
    return amplitude * smooth / np.abs(smooth).max(axis=1, keepdims=True)


def make_signal_classes(n_per_class: int = 100, length: int = 64, *, seed: int = 0, test_fraction: float = 0.3):
    """The 3-class 1D signal problem.

    * class 0 ("smooth"): smooth curves with values up to about +-1;
    * class 1 ("small"): the same kind of curves, but small (values up to about +-0.3);
    * class 2 ("spiky"): values in the same range as class 0, but with a few sharp spikes.

    Classes 0 and 2 overlap in their range of values, so the raw values alone
    cannot tell them apart; a filter that responds to spikes (the Laplacian of
    a Gaussian) can.

    Returns:
        (X_train, y_train, X_test, y_test): X of shape ``(N, length)``, y of shape ``(N,)`` in {0, 1, 2}.
    """
    if n_per_class < 2 or length < 16:
        raise ValueError(f"need n_per_class >= 2 and length >= 16, got {n_per_class}, {length}")
    rng = np.random.default_rng(seed)
    smooth = _smooth_noise(rng, n_per_class, length, 1.0) * rng.uniform(0.6, 1.0, size=(n_per_class, 1))
    small = _smooth_noise(rng, n_per_class, length, 0.3) * rng.uniform(0.6, 1.0, size=(n_per_class, 1))
    spiky = _smooth_noise(rng, n_per_class, length, 0.6)
    for row in spiky:  # 2 to 4 narrow spikes, positive or negative, that keep values within +-1
        where = rng.choice(np.arange(2, length - 2), size=rng.integers(2, 5), replace=False)
        row[where] = rng.choice([-1, 1], size=where.size) * rng.uniform(0.7, 1.0, size=where.size)
    X = np.concatenate([smooth, small, spiky])
    y = np.repeat(np.arange(3), n_per_class)
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    n_test = int(round(test_fraction * len(y)))
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test]


# ---------------------------------------------------------------------------- digits


@dataclass(frozen=True)
class Digits:
    """The digits split: images ``X_*`` of shape ``(N, 1, 8, 8)`` (float32 in [0, 1]), labels ``y_*`` (int64)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return 10

    def __repr__(self) -> str:
        sizes = ", ".join(f"{part}={len(getattr(self, 'y_' + part))}" for part in ("train", "val", "test"))
        return f"Digits({sizes}, image shape {tuple(self.X_train.shape[1:])})"


def _stratified_split(y, fraction: float, rng):
    """Indices (rest, part): ``fraction`` of every class, rounded, goes to ``part``."""
    part, rest = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(fraction * len(idx)))
        part.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(part))


def load_digits(*, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.2) -> Digits:
    """The 8x8 handwritten digits of scikit-learn (1,797 images, 10 classes), split three ways.

    The pixel values 0..16 are divided by 16, so images lie in ``[0, 1]``.
    The split is stratified (every class keeps its share in each part) and
    fixed by ``seed``: ``test_fraction`` of each class goes to the test set,
    ``val_fraction`` (of the whole) to the validation set, the rest to training.
    Within each part the order is shuffled (seeded).

    Returns:
        :class:`Digits` with ``X_*`` float32 of shape ``(N, 1, 8, 8)`` and ``y_*`` int64 of shape ``(N,)``.
    """
    from sklearn.datasets import load_digits as _sk_load_digits  # noqa: PLC0415  (ships its data offline)

    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= val_fraction, 0 < test_fraction and their sum < 1, got {val_fraction}, {test_fraction}")
    raw = _sk_load_digits()
    X = (raw.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]
    y = raw.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    rest, test = _stratified_split(y, test_fraction, rng)
    train, val = _stratified_split(y[rest], val_fraction / (1 - test_fraction), rng)
    train, val = rest[train], rest[val]
    parts = []
    for idx in (train, val, test):
        idx = rng.permutation(idx)
        parts += [np.ascontiguousarray(X[idx]), y[idx]]
    return Digits(*parts)


def batches(X, y, batch_size: int, *, shuffle: bool = True, seed=None):
    """Mini-batches ``(Xb, yb)`` covering every sample exactly once (the last batch may be smaller).

    Args:
        X: inputs, shape ``(N, ...)`` (NumPy or CuPy).
        y: labels, shape ``(N,)``.
        batch_size: samples per batch.
        shuffle: visit the samples in a random order (drawn from ``seed``,
            an int or a ``np.random.Generator``); otherwise in order.

    Yields:
        ``(X[idx], y[idx])`` on the device of ``X``.
    """
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X and y must have the same length, got {n} and {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not shuffle:
        for start in range(0, n, batch_size):
            yield X[start : start + batch_size], y[start : start + batch_size]
        return
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    xp = get_array_module(X)
    order = xp.asarray(rng.permutation(n))
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield X[idx], y[idx]


# ---------------------------------------------------------------------------- augmentation by shifts


def shift_images(X, dy, dx, *, fill=0.0):
    """Translate every image by whole pixels: ``out[n, :, i, j] = X[n, :, i - dy[n], j - dx[n]]``.

    Positive ``dy`` moves the content down, positive ``dx`` to the right; the
    pixels that come in from outside the image are ``fill``.  No pixel wraps
    around (unlike ``np.roll``).

    Args:
        X: images, shape ``(N, C, H, W)`` (NumPy or CuPy).
        dy, dx: ints (the same shift for every image) or integer arrays of shape ``(N,)``,
            each with ``|shift| < H`` (``dy``) or ``< W`` (``dx``).
        fill: value of the uncovered pixels (0 is the background of the digits in ``[0, 1]``;
            for standardised images pass the standardised background).

    Returns:
        Shifted images, shape ``(N, C, H, W)``, same dtype and device as ``X``.
    """
    if getattr(X, "ndim", None) != 4:
        raise ValueError(f"X must have shape (N, C, H, W), got shape {getattr(X, 'shape', None)}")
    xp = get_array_module(X)
    N, C, H, W = X.shape
    shifts = []
    for name, s, size in (("dy", dy, H), ("dx", dx, W)):
        s = np.broadcast_to(np.asarray(s), (N,)) if np.ndim(s) == 0 else np.asarray(s)
        if s.shape != (N,) or (s.size and not np.issubdtype(s.dtype, np.integer)):
            raise ValueError(f"{name} must be an int or an integer array of shape ({N},), got {s!r:.60}")
        if s.size and int(np.abs(s).max()) >= size:
            raise ValueError(f"{name} must satisfy |{name}| < {size}, got {int(np.abs(s).max())}")
        shifts.append(s.astype(np.int64))
    m = max([int(np.abs(s).max()) for s in shifts if s.size] + [0])
    if N == 0 or m == 0:
        return X.copy()
    padded = xp.full((N, C, H + 2 * m, W + 2 * m), fill, dtype=X.dtype)
    padded[:, :, m : m + H, m : m + W] = X
    # out[n, :, i, j] = padded[n, :, m + i - dy[n], m + j - dx[n]]
    rows = xp.asarray(m - shifts[0][:, None] + np.arange(H))  # (N, H)
    cols = xp.asarray(m - shifts[1][:, None] + np.arange(W))  # (N, W)
    n = xp.arange(N)[:, None, None, None]
    c = xp.arange(C)[None, :, None, None]
    return padded[n, c, rows[:, None, :, None], cols[:, None, None, :]]


def random_shifts(X, seed=None, *, max_shift: int = 1, p: float = 1.0, fill=0.0):
    """Random whole-pixel translations of some of the images (data augmentation).

    Each image is moved with probability ``p``, independently of the others,
    by a shift ``(dy, dx)`` drawn uniformly from the nonzero shifts with
    ``|dy|, |dx| <= max_shift`` (8 of them for ``max_shift=1``); the other
    images are left as they are.  A digit moved by a pixel is still the same
    digit, so the labels do not change.  Pass it to
    ``cc.train.fit(..., augment=...)`` to draw fresh shifts for every batch.

    Args:
        X: images, shape ``(N, C, H, W)`` (NumPy or CuPy).
        seed: int, ``np.random.Generator`` (used and advanced) or None.
        max_shift: largest shift in pixels, ``1 <= max_shift < min(H, W)``.
        p: probability that an image is moved, in ``[0, 1]``.
        fill: value of the pixels that come in from outside (see :func:`shift_images`).

    Returns:
        Images of shape ``(N, C, H, W)``, a new array (``X`` is not modified).
    """
    if getattr(X, "ndim", None) != 4:
        raise ValueError(f"X must have shape (N, C, H, W), got shape {getattr(X, 'shape', None)}")
    largest = min(X.shape[2:])
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or not 1 <= max_shift < largest:
        raise ValueError(f"max_shift must be an int with 1 <= max_shift < {largest}, got {max_shift!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    side = 2 * max_shift + 1
    moved = rng.random(len(X)) < p
    k = rng.integers(0, side * side - 1, size=len(X))  # index among the nonzero shifts
    k += k >= side * side // 2                          # skip the centre, (0, 0)
    dy = np.where(moved, k // side - max_shift, 0)
    dx = np.where(moved, k % side - max_shift, 0)
    return shift_images(X, dy, dx, fill=fill)


# ---------------------------------------------------------------------------- test images

#: Images that scikit-image ships inside its wheel (no download), and whether each is colour.
IMAGE_NAMES = (
    "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee", "coins",
    "colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "microaneurysms",
    "moon", "page", "retina", "rocket", "shepp_logan_phantom", "text",
)


def load_image(name: str = "camera", *, size=None, gray: bool = True, dtype=np.float64):
    """A test image bundled with scikit-image, as floats in ``[0, 1]``.

    Args:
        name: one of :data:`IMAGE_NAMES` (``"camera"``, ``"astronaut"``,
            ``"coins"``, ``"chelsea"`` ...), all shipped inside scikit-image.
        size: None (full size); an int, the length of the longer side after
            downscaling (aspect ratio kept); or ``(H, W)``.  Resizing uses
            ``skimage.transform.resize`` with anti-aliasing.
        gray: True gives ``(H, W)`` (colour images converted with
            ``skimage.color.rgb2gray``); False gives ``(H, W, 3)`` (gray
            images repeated on three channels).
        dtype: float dtype of the result.

    Raises:
        ValueError: an unknown name (the message lists the allowed ones) or a bad size.
    """
    if name not in IMAGE_NAMES:
        raise ValueError(f"unknown image {name!r}; scikit-image ships: {', '.join(IMAGE_NAMES)}")
    import skimage.data  # noqa: PLC0415
    from skimage.color import rgb2gray  # noqa: PLC0415
    from skimage.util import img_as_float  # noqa: PLC0415

    img = img_as_float(getattr(skimage.data, name)())
    if img.ndim == 3 and gray:
        img = rgb2gray(img)
    elif img.ndim == 2 and not gray:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if size is not None:
        from skimage.transform import resize  # noqa: PLC0415

        H, W = img.shape[:2]
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if size < 1:
                raise ValueError(f"size must be >= 1, got {size}")
            scale = size / max(H, W)
            shape = (max(1, round(H * scale)), max(1, round(W * scale)))
        elif isinstance(size, (tuple, list)) and len(size) == 2 and min(size) >= 1:
            shape = (int(size[0]), int(size[1]))
        else:
            raise ValueError(f"size must be None, an int or a pair (H, W) of ints >= 1, got {size!r}")
        img = resize(img, shape + img.shape[2:], anti_aliasing=math.prod(shape) < H * W, preserve_range=True)
    return np.clip(img, 0.0, 1.0).astype(dtype)
