"""Receptive fields and layer tables: hand-computed values, a brute-force oracle, and nn.summary."""
import math

import numpy as np
import pytest

from cnncourse import models, nn
from cnncourse.receptive import layer_table, parse_layers, receptive_field


def _brute_force(layers):
    """Receptive field and jump in 1D by listing the input pixels that reach unit 0 of each layer.

    Unit t of a layer reads units t*s + i*d (i = 0..k-1) of the layer below; walking down from
    {0} gives the set of input pixels, whose extent is the receptive field.
    """
    out = []
    for depth in range(1, len(layers) + 1):
        positions = {0}
        for _, k, s, d in reversed(layers[:depth]):
            positions = {t * s + i * d for t in positions for i in range(k)}
        jump = math.prod(s for _, _, s, _ in layers[:depth])
        out.append((max(positions) - min(positions) + 1, jump))
    return out


def test_three_3x3_convs_see_7_pixels():
    assert receptive_field([("conv", 3, 1, 1)] * 3) == [(3, 1), (5, 1), (7, 1)]


def test_conv_pool_conv():
    assert receptive_field([("conv", 3, 1, 1), ("pool", 2, 2, 1), ("conv", 3, 1, 1)]) == [(3, 1), (4, 2), (8, 2)]
    assert receptive_field("conv3, pool2, conv3")[-1] == (8, 2)


def test_wavenet_dilations():
    layers = [("conv", 2, 1, d) for d in (1, 2, 4, 8)]
    assert [rf for rf, _ in receptive_field(layers)] == [2, 4, 8, 16]


def test_short_tuples_use_defaults():
    assert receptive_field([("conv", 3), ("pool", 2)]) == receptive_field([("conv", 3, 1, 1), ("pool", 2, 2, 1)])


@pytest.mark.parametrize("text", [
    "conv3, conv3, pool2, conv3, conv3, pool2",
    "conv11s4, pool3s2, conv5, pool3s2, conv3, conv3, conv3, pool3s2",
    "conv3s2, conv3d2, pool2, conv2d4, conv5s3",
    "conv1, conv1s2, conv3",
])
def test_matches_brute_force(text):
    layers = parse_layers(text)
    assert receptive_field(layers) == _brute_force(layers)


def test_parse_layers():
    assert parse_layers("conv3, conv3s2, pool2, conv2d4, pool3s2") == [
        ("conv", 3, 1, 1), ("conv", 3, 2, 1), ("pool", 2, 2, 1), ("conv", 2, 1, 4), ("pool", 3, 2, 1)]
    assert parse_layers(" Conv3 ,pool2, ") == [("conv", 3, 1, 1), ("pool", 2, 2, 1)]


@pytest.mark.parametrize("bad", ["", "conv", "conv3, dense10", "conv3x3", "pool0"])
def test_parse_layers_rejects_with_a_readable_message(bad):
    with pytest.raises(ValueError, match="layer|no layers|>= 1"):
        parse_layers(bad)


def test_receptive_field_rejects_bad_tuples():
    with pytest.raises(ValueError, match="kind"):
        receptive_field([("dense", 3, 1, 1)])
    with pytest.raises(ValueError, match="stride"):
        receptive_field([("conv", 3, 0, 1)])


# --------------------------------------------------------------------------- layer_table

CPSC = [{"type": "conv", "filters": 32, "k": 5}, {"type": "relu"}, {"type": "pool", "k": 2},
        {"type": "flatten"}, {"type": "dense", "units": 128}, {"type": "relu"}, {"type": "dense", "units": 10}]
LWLS = [{"type": "conv", "filters": 4, "k": 5, "stride": 1, "pad": 2}, {"type": "relu"},
        {"type": "conv", "filters": 8, "k": 5, "stride": 2, "pad": 2}, {"type": "relu"},
        {"type": "conv", "filters": 12, "k": 4, "stride": 2, "pad": 1}, {"type": "relu"},
        {"type": "flatten"}, {"type": "dense", "units": 200}, {"type": "relu"}, {"type": "dense", "units": 10}]
EDINBURGH = [{"type": "conv", "filters": 32, "k": 3, "pad": 1}, {"type": "relu"}, {"type": "pool", "k": 2},
             {"type": "conv", "filters": 64, "k": 3, "pad": 1}, {"type": "relu"}, {"type": "pool", "k": 2},
             {"type": "flatten"}, {"type": "dense", "units": 10}]


@pytest.mark.parametrize("builder, input_shape, specs", [
    (models.cpsc340_net, (3, 28, 28), CPSC),
    (models.lwls_example_net, (1, 28, 28), LWLS),
    (models.edinburgh_mnist_net, (1, 28, 28), EDINBURGH),
])
def test_layer_table_agrees_with_nn_summary(builder, input_shape, specs):
    rows = nn.summary(builder(), input_shape, print_table=False)
    table = layer_table(input_shape, specs)
    assert [(r.output_shape, r.params) for r in rows] == table


def test_published_counts():
    assert sum(p for _, p in layer_table((3, 28, 28), CPSC)) == 593_674
    lwls = [row for row, spec in zip(layer_table((1, 28, 28), LWLS), LWLS) if spec["type"] in ("conv", "dense")]
    assert [math.prod(shape) for shape, _ in lwls] == [3136, 1568, 588, 200, 10]
    assert [params for _, params in lwls] == [104, 808, 1548, 117_800, 2010]
    assert sum(p for _, p in layer_table((1, 28, 28), EDINBURGH)) == 50_186


def test_fully_connected_counts_from_the_notes():
    dense = lambda shape, units: layer_table(shape, [{"type": "dense", "units": units, "bias": False}])[0][1]
    assert dense((3, 200, 200), 1000) == 120_000_000
    assert dense((3, 256, 256), 10_000) == 1_966_080_000
    assert dense((3, 224, 224), 100) == 15_052_800
    assert dense((1, 4, 4), 9) == 144
    assert layer_table((1, 4, 4), [{"type": "conv", "filters": 1, "k": 2, "bias": False}]) == [((1, 3, 3), 4)]


def test_cpsc_erratum_256_input():
    shape, params = layer_table((3, 256, 256), CPSC)[4]
    assert shape == (128,) and params - 128 == 126 * 126 * 32 * 128 == 65_028_096


def test_groups_and_pairs():
    (shape, params), = layer_table((64, 10, 10), [{"type": "conv", "filters": 64, "k": 3, "pad": 1, "groups": 64}])
    assert shape == (64, 10, 10) and params == 64 * 9 + 64
    (shape, params), = layer_table((2, 9, 12), [{"type": "conv", "filters": 3, "k": (3, 5), "stride": (2, 1)}])
    assert shape == (3, 4, 8) and params == 3 * 2 * 15 + 3


@pytest.mark.parametrize("specs, match", [
    ([{"type": "conv", "filters": 2, "k": 9}], "larger|spans"),
    ([{"type": "dense", "units": 3}, {"type": "conv", "filters": 2, "k": 1}], r"\(C, H, W\)"),
    ([{"type": "conv", "k": 3}], "filters"),
    ([{"type": "lstm"}], "type must be"),
    ([{"type": "conv", "filters": 4, "k": 1, "groups": 3}], "groups"),
])
def test_layer_table_errors(specs, match):
    with pytest.raises(ValueError, match=match):
        layer_table((2, 5, 5), specs)


def test_layer_table_prints(capsys):
    layer_table((3, 28, 28), CPSC, print_table=True)
    text = capsys.readouterr().out
    assert "593,674" in text and "(32, 24, 24)" in text


def test_no_overflow_for_huge_layers():
    (_, params), = layer_table((3, 4096, 4096), [{"type": "dense", "units": 100_000}])
    assert params == 3 * 4096 * 4096 * 100_000 + 100_000 and isinstance(params, int)
    assert np.int64(params) == params
