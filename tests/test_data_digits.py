"""The digits split, mini-batches and the bundled test images."""
import numpy as np
import pytest

from cnncourse import data, to_numpy


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def test_shapes_dtypes_range(digits):
    parts = [(digits.X_train, digits.y_train), (digits.X_val, digits.y_val), (digits.X_test, digits.y_test)]
    assert sum(len(y) for _, y in parts) == 1797
    for X, y in parts:
        assert X.dtype == np.float32 and X.shape[1:] == (1, 8, 8) and X.flags.c_contiguous
        assert y.dtype == np.int64 and y.shape == (len(X),)
        assert X.min() >= 0.0 and X.max() <= 1.0
    assert digits.X_train.max() == 1.0  # 16 / 16
    assert abs(len(digits.y_test) / 1797 - 0.2) < 0.01
    assert abs(len(digits.y_val) / 1797 - 0.15) < 0.01
    assert digits.num_classes == 10 and "train=" in repr(digits)


def test_split_is_a_partition_of_the_sklearn_images(digits):
    from sklearn.datasets import load_digits

    raw = load_digits()
    ours = np.concatenate([digits.X_train, digits.X_val, digits.X_test]).reshape(1797, 64) * 16
    key = lambda a: sorted(map(bytes, a.astype(np.uint8)))  # noqa: E731
    assert key(ours) == key(raw.data)


def test_stratified(digits):
    overall = np.bincount(np.concatenate([digits.y_train, digits.y_val, digits.y_test])) / 1797
    for y in (digits.y_train, digits.y_val, digits.y_test):
        share = np.bincount(y, minlength=10) / len(y)
        assert np.abs(share - overall).max() < 0.01


def test_deterministic_and_seeded(digits):
    again = data.load_digits()
    for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(digits, name), getattr(again, name))
    other = data.load_digits(seed=1)
    assert not np.array_equal(other.y_test, digits.y_test)


def test_fractions_and_bad_fractions():
    d = data.load_digits(val_fraction=0.0, test_fraction=0.5)
    assert len(d.y_val) == 0 and abs(len(d.y_test) - 898) <= 5
    with pytest.raises(ValueError):
        data.load_digits(val_fraction=0.6, test_fraction=0.5)


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_cover_every_sample_once(shuffle):
    X = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    got = list(data.batches(X, y, 5, shuffle=shuffle, seed=0))
    assert [len(yb) for _, yb in got] == [5, 5, 5, 5, 3]
    seen = np.concatenate([yb for _, yb in got])
    assert sorted(seen) == list(range(23))
    for Xb, yb in got:
        np.testing.assert_array_equal(Xb[:, 0], 2 * yb)  # X and y stay paired
    assert (list(seen) == list(range(23))) == (not shuffle)


def test_batches_seeded_and_new_order_per_epoch():
    X, y = np.zeros((50, 1)), np.arange(50)
    first = [yb for _, yb in data.batches(X, y, 10, seed=3)]
    again = [yb for _, yb in data.batches(X, y, 10, seed=3)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    rng = np.random.default_rng(0)  # one generator over epochs: a new order each epoch
    e1 = np.concatenate([yb for _, yb in data.batches(X, y, 10, seed=rng)])
    e2 = np.concatenate([yb for _, yb in data.batches(X, y, 10, seed=rng)])
    assert not np.array_equal(e1, e2)


def test_batches_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        list(data.batches(np.zeros((3, 1)), np.zeros(4), 2))
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batches(np.zeros((3, 1)), np.zeros(3), 0))


def test_load_image_gray_and_rgb():
    cam = data.load_image()
    assert cam.shape == (512, 512) and cam.dtype == np.float64
    assert cam.min() >= 0.0 and cam.max() <= 1.0 and cam.max() > 0.9
    astro = data.load_image("astronaut", gray=False)
    assert astro.shape == (512, 512, 3) and 0.0 <= astro.min() and astro.max() <= 1.0
    assert data.load_image("astronaut").shape == (512, 512)
    assert data.load_image("coins", gray=False).shape == (303, 384, 3)


def test_load_image_resize():
    small = data.load_image("coins", size=64, dtype=np.float32)
    assert small.shape == (50, 64) and small.dtype == np.float32  # longer side 64, aspect kept
    assert small.min() >= 0.0 and small.max() <= 1.0
    assert data.load_image("astronaut", size=(32, 48), gray=False).shape == (32, 48, 3)
    with pytest.raises(ValueError, match="size"):
        data.load_image("camera", size=0)


@pytest.mark.parametrize("name", data.IMAGE_NAMES)
def test_every_listed_image_ships_offline(name):
    img = data.load_image(name, size=16)
    assert img.ndim == 2 and max(img.shape) == 16
    assert np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0


def test_unknown_image_lists_allowed_names():
    with pytest.raises(ValueError) as err:
        data.load_image("lena")
    message = str(err.value)
    assert "'lena'" in message and "camera" in message and "astronaut" in message and "coins" in message


# ---------------------------------------------------------------------------- augmentation by shifts


def test_shift_images_hand_computed(xp):
    X = xp.asarray(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4))
    # image 0: [[0 1 2 3] [4 5 6 7] [8 9 10 11]], moved down 1 and left 1
    got = to_numpy(data.shift_images(X, 1, -1))
    np.testing.assert_array_equal(got[0, 0], [[0, 0, 0, 0], [1, 2, 3, 0], [5, 6, 7, 0]])
    # per-image shifts: image 0 right by 1, image 1 up by 2, uncovered pixels -1
    got = data.shift_images(X, np.array([0, -2]), np.array([1, 0]), fill=-1)
    got = to_numpy(got)
    np.testing.assert_array_equal(got[0, 0], [[-1, 0, 1, 2], [-1, 4, 5, 6], [-1, 8, 9, 10]])
    np.testing.assert_array_equal(got[1, 0], [[20, 21, 22, 23], [-1, -1, -1, -1], [-1, -1, -1, -1]])
    assert got.dtype == np.float32 and got.shape == (2, 1, 3, 4)


@pytest.mark.parametrize("dy, dx", [(0, 0), (1, 0), (0, -1), (-2, 1), (2, 2)])
def test_shift_images_is_roll_without_wraparound(dy, dx):
    X = np.random.default_rng(0).random((3, 2, 6, 5))
    expected = np.roll(X, (dy, dx), axis=(2, 3))  # an independent oracle, then blank what wrapped around
    if dy > 0:
        expected[:, :, :dy] = 0
    elif dy < 0:
        expected[:, :, dy:] = 0
    if dx > 0:
        expected[:, :, :, :dx] = 0
    elif dx < 0:
        expected[:, :, :, dx:] = 0
    got = data.shift_images(X, dy, dx)
    np.testing.assert_array_equal(got, expected)
    assert got is not X
    np.testing.assert_array_equal(data.shift_images(got, -dy, -dx)[:, :, 2:4, 2:3], X[:, :, 2:4, 2:3])  # centre comes back


def test_shift_images_bad_arguments():
    X = np.zeros((2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.shift_images(np.zeros((4, 4)), 1, 1)
    with pytest.raises(ValueError, match=r"\|dy\| < 4"):
        data.shift_images(X, 4, 0)
    with pytest.raises(ValueError, match="shape"):
        data.shift_images(X, np.array([1, 0, 1]), 0)
    with pytest.raises(ValueError, match="integer"):
        data.shift_images(X, 0, np.array([0.5, 1.0]))


def _which_shift(out, X, max_shift):
    """For each image, the (dy, dx) that turns X[n] into out[n] (a label-preserving move of its own image)."""
    found = []
    for n in range(len(X)):
        hits = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)
                if np.array_equal(out[n], data.shift_images(X[n : n + 1], dy, dx)[0])]
        assert hits, f"image {n} is not a shift of its input"
        found.append(hits[0])
    return found


def test_random_shifts_moves_each_image_of_its_own():
    X = data.load_digits().X_train[:300]
    out = data.random_shifts(X, 0, p=0.5)
    assert out.shape == X.shape and out.dtype == X.dtype
    shifts = _which_shift(out, X, 1)  # image n is still image n, moved: its label still holds
    moved = np.mean([s != (0, 0) for s in shifts])
    assert 0.4 < moved < 0.6
    assert {s for s in shifts if s != (0, 0)} == {(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)} - {(0, 0)}
    assert (0, 0) not in _which_shift(data.random_shifts(X[:50], 1, p=1.0), X[:50], 1)
    np.testing.assert_array_equal(data.random_shifts(X, 0, p=0.0), X)
    assert np.abs(_which_shift(data.random_shifts(X[:40], 2, max_shift=2), X[:40], 2)).max() == 2


def test_random_shifts_seeded():
    X = data.load_digits().X_train[:64]
    np.testing.assert_array_equal(data.random_shifts(X, 3), data.random_shifts(X, 3))
    assert not np.array_equal(data.random_shifts(X, 3), data.random_shifts(X, 4))
    rng = np.random.default_rng(0)  # a generator is advanced: two calls, two different draws
    assert not np.array_equal(data.random_shifts(X, rng), data.random_shifts(X, rng))


def test_random_shifts_bad_arguments():
    X = np.zeros((2, 1, 8, 8))
    for bad in (0, 8, 1.0, True):
        with pytest.raises(ValueError, match="max_shift"):
            data.random_shifts(X, 0, max_shift=bad)
    with pytest.raises(ValueError, match="p must"):
        data.random_shifts(X, 0, p=1.5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.random_shifts(np.zeros((2, 64)), 0)
