"""The ipywidgets explorers of cnncourse.widgets, live in JupyterLab.

Each explorer is shown by a tiny scratch notebook (so the test does not depend on
where the course notebooks embed it).  The test checks that it renders, that
moving a slider / changing a field redraws the figure (the pixels of the Output
area change), and that an impossible setting shows a readable message, not a
traceback (in the page or in the kernel's log).
"""
from __future__ import annotations

import re
import time

import nbformat
import pytest

from e2e_lab import REPO, artifact

WIDGETS_PY = REPO / "cnncourse" / "widgets.py"
SLOW_REDRAW_MS = 200


def _scratch_notebook(root, name: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(f"from cnncourse import widgets\nbox = widgets.{name}()\nbox"),
        nbformat.v4.new_code_cell("print('redraw ms:', [round(1000 * t) for t in box.timings])"),
    ]
    path = f"e2e_widget_{name}.ipynb"
    nbformat.write(nb, root / path)
    return path


# --------------------------------------------------------------------------- controls, the way a student uses them


def _control(box, kind: str, label: str):
    """The ipywidgets control of class `widget-<kind>` whose description is `label`."""
    return box.locator(f".widget-{kind}").filter(
        has=box.page.locator(".widget-label", has_text=re.compile(rf"^{re.escape(label)}$"))).first


def drag_slider(box, label: str, dx: float) -> None:
    """Drag the handle of the slider `label` by dx pixels with the mouse."""
    handle = _control(box, "slider", label).locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    bounds = handle.bounding_box()
    x, y = bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 2
    mouse = box.page.mouse
    mouse.move(x, y)
    mouse.down()
    for step in range(1, 6):
        mouse.move(x + dx * step / 5, y)
    mouse.up()


def type_slider(box, label: str, value) -> None:
    """Type a value into the slider's readout (the number beside it) and press Enter."""
    readout = _control(box, "slider", label).locator(".widget-readout").first
    readout.click()
    readout.press("Control+a")
    readout.press_sequentially(str(value))
    readout.press("Enter")


def type_text(box, label: str | None, value, *, index: int = 0) -> None:
    """Replace the text of a Text/FloatText field and press Enter."""
    field = (_control(box, "text", label) if label else box.locator(".widget-text").nth(index)).locator("input").first
    field.click()
    field.press("Control+a")
    field.press_sequentially(str(value))
    field.press("Enter")


def choose(box, label: str, option: str) -> None:
    _control(box, "dropdown", label).locator("select").select_option(label=option)


# --------------------------------------------------------------------------- what each explorer gets


def _conv_change(box):
    drag_slider(box, "kernel k", 80)  # 3 -> about 5


def _conv_invalid(box):
    type_slider(box, "padding p", 0)
    type_slider(box, "input n", 2)
    type_slider(box, "kernel k", 5)  # a 5x5 kernel on a 2x2 input without padding


def _filter_change(box):
    choose(box, "kernel", "blur")


def _filter_second(box):
    type_text(box, None, 4, index=4)  # the centre tap of the 3x3 grid: the menu switches to "custom"


def _filter_invalid(box):
    type_text(box, None, "1e999", index=0)  # not a finite number


def _receptive_change(box):
    drag_slider(box, "depth", -150)  # it starts at the last layer


def _receptive_second(box):
    choose(box, "preset", "stride-2 3x3 convs")


def _receptive_invalid(box):
    type_text(box, "layers", "conv3, conv3, bogus")


CASES = {
    # name: (change, second change or None, invalid action, readable message expected (None: input refused))
    "conv_arithmetic_explorer": (_conv_change, None, _conv_invalid, r"No output for these settings"),
    "filter_playground": (_filter_change, _filter_second, _filter_invalid, None),
    "receptive_field_explorer": (_receptive_change, _receptive_second, _receptive_invalid, r"cannot read layer 3 'bogus'"),
}

JS_PICTURE = "el => { const img = el.querySelector('img'); return img ? img.src : el.innerText; }"


def _redraw(lab, output, action) -> float:
    """Do `action`, wait until the Output area shows a different picture; return the seconds it took."""
    before = output.evaluate(JS_PICTURE)
    start = time.perf_counter()
    action()
    lab.page.wait_for_function(f"([el, old]) => ({JS_PICTURE})(el) !== old",
                               arg=[output.element_handle(), before], timeout=20_000)
    seconds = time.perf_counter() - start
    lab.page.wait_for_timeout(300)  # let the image decode before a screenshot
    return seconds


@pytest.mark.parametrize("name", list(CASES))
def test_widget_explorer(lab, name, findings):
    if not WIDGETS_PY.exists():
        pytest.skip("cnncourse/widgets.py is not written yet")
    if not re.search(rf"^def {name}\(", WIDGETS_PY.read_text(), flags=re.M):
        pytest.skip(f"cnncourse.widgets has no {name} yet")
    change, second, invalid, message = CASES[name]
    lab.open(_scratch_notebook(lab.server.root, name))
    state = lab.run_all(timeout=120)
    assert not lab.errors(), f"{name}: errors when displaying it: {lab.errors()}"
    assert state["executed"] == state["cells"]

    box = lab.cell(0).locator(".jp-OutputArea-output > .widget-vbox").first
    box.wait_for(state="visible", timeout=30_000)
    output = box.locator(".widget-output").first
    output.locator("img").first.wait_for(state="visible", timeout=30_000)
    box.screenshot(path=artifact(f"widget_{name}_before.png"))
    pixels_before = output.screenshot()
    log_offset = lab.server.log_size()

    browser_ms = [1000 * _redraw(lab, output, lambda: change(box))]
    pixels_after = output.screenshot()
    box.screenshot(path=artifact(f"widget_{name}_after.png"))
    assert pixels_after != pixels_before, f"{name}: the figure did not change after the interaction"
    if second:
        browser_ms.append(1000 * _redraw(lab, output, lambda: second(box)))
        assert output.screenshot() != pixels_after, f"{name}: the figure did not change after the second interaction"

    # An impossible setting: a readable message in place of the figure, never a traceback.
    shown_before_invalid = output.screenshot()
    invalid(box)
    if message:
        output.get_by_text(re.compile(message)).first.wait_for(timeout=20_000)
    else:
        lab.page.wait_for_timeout(1500)
    box.screenshot(path=artifact(f"widget_{name}_invalid.png"))
    text = output.inner_text()
    log = lab.server.log_since(log_offset)
    assert "Traceback" not in text and "Traceback" not in box.inner_text(), f"{name}: traceback shown:\n{text}"
    assert "Traceback" not in log and "Exception in comm" not in log, f"{name}: the kernel raised:\n{log[-3000:]}"
    assert not lab.errors(), f"{name}: {lab.errors()}"
    if message is None:  # the browser refuses the entry: the figure stays as it was
        assert output.screenshot() == shown_before_invalid, f"{name}: an invalid entry changed the figure"
    else:
        assert len(text.strip()) < 400, f"{name}: the message is a wall of text:\n{text}"

    # How fast it feels: kernel-side redraw times (box.timings) and browser round trips.
    lab.run_cell(1)
    printed = lab.output_text(1)
    kernel_ms = [int(v) for v in re.findall(r"\d+", printed.split(":", 1)[-1])]
    assert kernel_ms, f"{name}: no redraw timings printed: {printed!r}"
    redraws = sorted(kernel_ms[1:] or kernel_ms)  # [0] is the first draw, when it is displayed
    median, round_trip = redraws[len(redraws) // 2], max(browser_ms)
    if redraws[-1] > SLOW_REDRAW_MS or round_trip > 2 * SLOW_REDRAW_MS:
        findings(f"widget {name}: redraw in the kernel median {median} ms, max {redraws[-1]} ms over {len(redraws)} "
                 f"redraws (limit {SLOW_REDRAW_MS}); {round_trip:.0f} ms from the interaction to the new picture "
                 f"in the browser")
    print(f"{name}: kernel redraw ms {kernel_ms}; browser round trip ms {[round(ms) for ms in browser_ms]}")
