"""Widgets: pure state functions against the package, and the widgets driven without a browser."""
import subprocess
import sys

import numpy as np
import pytest

from cnncourse import conv, filters, receptive
from cnncourse import widgets as wd

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")


def _png(box):
    (item,) = box.output.outputs
    assert item["output_type"] == "display_data"
    return item["data"].get("image/png")


def _message(box):
    (item,) = box.output.outputs
    return item["data"]["text/plain"]


# --------------------------------------------------------------------------- pure state functions


def test_conv_arithmetic_state_numbers():
    s = wd.conv_arithmetic_state(7, 3, stride=2, pad=1, out_row=1, out_col=2)
    assert s["ok"] and s["out"] == 4 and s["padded"] == 9 and s["span"] == 3
    assert s["formula"].endswith("= floor(6/2) + 1 = 4")
    assert sorted(map(tuple, s["taps"])) == [(r, c) for r in (2, 3, 4) for c in (4, 5, 6)]
    assert (s["grid"] == 0).sum() == 81 - 49 and s["real_taps"] == 9
    corner = wd.conv_arithmetic_state(5, 3, pad=2, dilation=2)  # top-left output reads padding at (0,0),(0,2),(2,0)...
    assert corner["real_taps"] == 4 and corner["out"] == 5


@pytest.mark.parametrize("n, k, s, p, d", [(n, k, s, p, d) for n in (1, 3, 6) for k in (1, 2, 3, 5)
                                           for s in (1, 2, 3) for p in (0, 1, 2) for d in (1, 2)])
def test_conv_arithmetic_state_agrees_with_correlate2d(n, k, s, p, d):
    state = wd.conv_arithmetic_state(n, k, stride=s, pad=p, dilation=d)
    x = np.pad(np.arange(1.0, n * n + 1).reshape(n, n), p)
    try:
        z = conv.correlate2d(x, np.ones((k, k)), stride=s, dilation=d)
    except ValueError:
        assert not state["ok"] and "No output" in state["message"]
        return
    assert state["ok"] and z.shape == (state["out"], state["out"])


def test_conv_arithmetic_taps_are_what_the_output_reads():
    """Perturb each padded pixel: exactly the listed taps change the selected output."""
    n, k, s, p, d, r, c = 6, 3, 2, 2, 2, 1, 2
    state = wd.conv_arithmetic_state(n, k, stride=s, pad=p, dilation=d, out_row=r, out_col=c)
    w = np.arange(1.0, k * k + 1).reshape(k, k)
    padded = np.zeros((n + 2 * p, n + 2 * p))
    base = conv.correlate2d(padded, w, stride=s, dilation=d)[r, c]
    read = set()
    for i, j in np.ndindex(padded.shape):
        bumped = padded.copy()
        bumped[i, j] = 1.0
        if conv.correlate2d(bumped, w, stride=s, dilation=d)[r, c] != base:
            read.add((i, j))
    assert read == set(map(tuple, state["taps"]))


def test_conv_arithmetic_state_clips_the_selected_pixel():
    s = wd.conv_arithmetic_state(5, 3, out_row=10, out_col=-3)
    assert (s["out_row"], s["out_col"]) == (2, 0)


def test_filter_playground_state():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(12, 10))
    ident = wd.filter_playground_state(image, wd.PLAYGROUND_KERNELS["identity"]())
    assert ident["ok"] and np.allclose(ident["filtered"], image) and not ident["diverging"]
    lap = wd.filter_playground_state(image, filters.laplacian2d())
    assert lap["diverging"] and lap["clim"][0] == -lap["clim"][1]
    reference = conv.correlate2d(image, filters.laplacian2d(), mode="same", boundary="replicate")
    assert np.allclose(lap["filtered"], reference)
    flat = wd.filter_playground_state(np.ones((8, 8)), filters.sobel_x())
    assert np.allclose(flat["filtered"], 0)  # replicate boundary: no false edge at the border
    bad = wd.filter_playground_state(image, [[0, np.nan, 0], [0, 1, 0], [0, 0, 0]])
    assert not bad["ok"] and "finite" in bad["message"]
    assert not wd.filter_playground_state(image, np.ones(3))["ok"]


def test_playground_kernels_are_the_package_kernels():
    assert np.array_equal(wd.PLAYGROUND_KERNELS["sobel x"](), filters.sobel_x())
    assert np.array_equal(wd.PLAYGROUND_KERNELS["blur"](), filters.blur())
    hd = wd.PLAYGROUND_KERNELS["horizontal difference [-1, 1]"]()
    assert hd.shape == (3, 3) and hd.sum() == 0 and np.array_equal(hd[1, 1:], [-1, 1])
    assert all(k().shape == (3, 3) for k in wd.PLAYGROUND_KERNELS.values())


def test_receptive_field_state():
    s = wd.receptive_field_state("conv3, pool2, conv3")
    assert s["ok"] and list(s["rf"]) == [1, 3, 4, 8] and list(s["jump"]) == [1, 1, 2, 2] and s["depth"] == 3
    assert s["labels"] == ["conv3", "pool2", "conv3"]
    assert wd.receptive_field_state("conv3, conv3", depth=9)["depth"] == 2
    bad = wd.receptive_field_state("conv3, dense10")
    assert not bad["ok"] and "dense10" in bad["message"]
    for text in wd.RECEPTIVE_PRESETS.values():
        st = wd.receptive_field_state(text)
        assert [tuple(v) for v in zip(st["rf"][1:], st["jump"][1:])] == receptive.receptive_field(text)


# --------------------------------------------------------------------------- the widgets


def test_conv_arithmetic_explorer_reacts():
    box = wd.conv_arithmetic_explorer(n=7, k=3, stride=1, pad=1)
    first, text = _png(box), box.children[1].value
    assert first and box.state["out"] == 7 and "= 7$" in text
    box.controls["stride"].value = 2
    assert box.state["out"] == 4 and box.controls["out_row"].max == 3
    assert _png(box) != first and box.children[1].value != text
    box.controls["out_col"].value = 3
    assert box.state["out_col"] == 3 and box.figure.window.get_x() == 3 * 2 - 0.5


def test_conv_arithmetic_explorer_invalid_combination_shows_a_message():
    box = wd.conv_arithmetic_explorer(n=3, k=3, pad=0)
    box.controls["k"].value = 7  # kernel larger than the padded input: no exception
    assert not box.state["ok"]
    assert "No output" in _message(box) and "image/png" not in box.output.outputs[0]["data"]
    assert "text/html" in box.output.outputs[0]["data"]
    box.controls["pad"].value = 2  # 3 + 4 = 7: fits again
    assert box.state["ok"] and box.state["out"] == 1 and _png(box)


def test_filter_playground_reacts():
    box = wd.filter_playground(np.random.default_rng(1).uniform(size=(32, 40)), kernel="blur")
    first = _png(box)
    assert np.allclose(box.state["kernel"], filters.blur())
    box.controls["kernel"].value = "sobel y"
    assert np.allclose([box.controls[f"w{i}{j}"].value for i in range(3) for j in range(3)], filters.sobel_y().ravel())
    assert box.state["diverging"] and _png(box) != first
    data_before = box.figure.im_out.get_array().copy()
    box.controls["w11"].value = 5.0
    assert box.controls["kernel"].value == "custom" and box.state["kernel"][1, 1] == 5.0
    assert not np.allclose(box.figure.im_out.get_array(), data_before)
    box.controls["w00"].value = float("inf")
    assert not box.state["ok"] and "finite" in _message(box)


def test_filter_playground_default_image_and_colour():
    pytest.importorskip("skimage")
    box = wd.filter_playground()
    assert box.image.shape == (128, 128)
    colour = wd.filter_playground(np.random.default_rng(2).uniform(size=(16, 16, 3)))
    assert colour.image.shape == (16, 16)
    with pytest.raises(ValueError, match="2D gray image"):
        wd.filter_playground(np.zeros((2, 3, 4, 5)))


def test_receptive_field_explorer_reacts():
    box = wd.receptive_field_explorer()
    first = _png(box)
    assert box.controls["depth"].max == len(box.state["layers"])
    box.controls["preset"].value = "WaveNet dilations (k=2)"
    assert list(box.state["rf"])[:5] == [1, 2, 4, 8, 16] and _png(box) != first
    box.controls["depth"].value = 4
    assert box.state["depth"] == 4 and "16" in box.figure.ax.get_title()
    assert "<table class='cc-rf'>" in box.children[-1].value and "padding" in box.children[-1].value
    box.controls["layers"].value = "conv3, oops"
    assert box.controls["preset"].value == "custom" and "oops" in _message(box)
    box.controls["layers"].value = "conv3, conv3, conv3"
    assert list(box.state["rf"]) == [1, 3, 5, 7] and box.controls["depth"].value == 3


def test_redraw_is_quick_enough():
    """Loose bound (shared CI cores); the timings are printed for the record."""
    box = wd.conv_arithmetic_explorer()
    for v in (5, 9, 12, 4, 8):
        box.controls["n"].value = v
    play = wd.filter_playground(np.random.default_rng(3).uniform(size=(128, 128)))
    for name in ("blur", "laplacian", "sobel y", "sharpen"):
        play.controls["kernel"].value = name
    rf = wd.receptive_field_explorer()
    for d in (1, 2, 3):
        rf.controls["depth"].value = d
    for name, b in (("conv arithmetic", box), ("filter playground", play), ("receptive field", rf)):
        median = float(np.median(b.timings[1:]))
        print(f"{name}: median redraw {1000 * median:.0f} ms")
        assert median < 2.0


def test_widgets_leave_matplotlib_global_state_alone():
    code = ("import sys, cnncourse.widgets as w; "
            "assert 'matplotlib' not in sys.modules and 'ipywidgets' not in sys.modules; "
            "import matplotlib as mpl, matplotlib.pyplot as plt; before = dict(mpl.rcParams); "
            "w.conv_arithmetic_explorer(); w.receptive_field_explorer(); "
            "assert plt.get_fignums() == [] and dict(mpl.rcParams) == before")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
