"""The digits split, mini-batches and the bundled test images."""
import numpy as np
import pytest

from cnncourse import data


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
