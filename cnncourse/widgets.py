"""Interactive explorers for notebooks 03 and 04 (ipywidgets).

Each explorer is a function returning a ``VBox`` of controls, a line of text
and an ``Output`` that shows a small figure.  The work is split so that it can
be tested without a browser:

* a pure ``*_state(...)`` function turns control values into numbers (or a
  readable message when the combination is impossible);
* a small figure class draws a state by updating the artists of one figure
  that is created once (no new figure per redraw);
* the widget glues the two together and puts the rendered PNG (or the
  message) into its ``Output`` by setting ``Output.outputs``, which works
  with or without a running kernel.

The returned box carries ``box.controls`` (name -> control widget),
``box.output``, ``box.figure`` (the drawing object), ``box.state`` (the last
state dict) and ``box.timings`` (seconds per redraw).

Nothing here touches matplotlib's global state: figures are plain
``matplotlib.figure.Figure`` objects rendered with the Agg canvas, and
matplotlib and ipywidgets are imported inside the functions.
"""
from __future__ import annotations

import base64
import html
import io
import time

import numpy as np

from . import conv, filters, receptive

__all__ = [
    "conv_arithmetic_state", "conv_arithmetic_explorer", "ConvArithmeticFigure",
    "PLAYGROUND_KERNELS", "filter_playground_state", "filter_playground", "FilterPlaygroundFigure",
    "RECEPTIVE_PRESETS", "receptive_field_state", "receptive_field_explorer", "ReceptiveFieldFigure",
]


# --------------------------------------------------------------------------- shared plumbing


def _new_figure(figsize):
    """A figure outside pyplot (never shown by accident, never registered globally)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=80)
    FigureCanvasAgg(fig)
    return fig


class _FigureBase:
    """Owns one figure; subclasses update its artists in ``draw(state)``, which returns ``self``.

    In a notebook the object shows itself as a PNG, so the static picture of
    an explorer is one line: ``cc.widgets.ConvArithmeticFigure().draw(state)``.
    """

    fig = None

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=self.fig.dpi)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


_TABLE_STYLE = ("<style>.cc-rf td, .cc-rf th {padding: 2px 10px; text-align: right}"
                ".cc-rf tr:nth-child(even) {background: #f3f3f3}</style>")


def _show_png(output, png: bytes, text: str) -> None:
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text}},)


def _show_message(output, message: str) -> None:
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"text/plain": message,
                                "text/html": f"<div style='color:#9c2a00;font-family:monospace;white-space:pre-wrap'>"
                                             f"⚠ {html.escape(message)}</div>"}},)


def _attach(box, *, controls, output, figure, refresh):
    box.controls, box.output, box.figure = controls, output, figure
    box.state, box.timings = None, []
    box.refresh = refresh
    return box


# --------------------------------------------------------------------------- (1) convolution arithmetic


def conv_arithmetic_state(n: int, k: int, *, stride: int = 1, pad: int = 0, dilation: int = 1,
                          out_row: int = 0, out_col: int = 0) -> dict:
    """Numbers behind the convolution-arithmetic explorer (square input, square kernel).

    Args:
        n: input height = width; k: kernel size; stride, pad (zeros on each
            side), dilation: as in :func:`cnncourse.conv.conv_output_size`.
        out_row, out_col: the output pixel whose inputs are highlighted
            (clipped to the output).

    Returns:
        dict with ``ok`` (False: ``message`` says why there is no output) and, when
        ok: ``out`` (output size), ``padded`` (n + 2p), ``span`` (d(k-1)+1),
        ``formula`` (the formula with the numbers in it, plain text),
        ``latex`` (the same in LaTeX), ``out_row``/``out_col`` (after clipping),
        ``taps`` (``(k*k, 2)`` array of padded-input coordinates read by that
        output), ``grid`` (``(padded, padded)`` codes: 0 padding, 1 input,
        2 padding read by the output, 3 input read by the output) and
        ``real_taps`` (how many taps land on real input pixels).
    """
    values = dict(n=n, k=k, stride=stride, pad=pad, dilation=dilation)
    try:
        out = conv.conv_output_size(n, k, stride=stride, pad=pad, dilation=dilation)
    except (TypeError, ValueError) as err:
        reason = str(err).removeprefix("no output: ")
        return {"ok": False, "message": f"No output for these settings: {reason}. Add padding, enlarge the input "
                                        f"or shrink the kernel or the dilation.", **values}
    padded, span = n + 2 * pad, dilation * (k - 1) + 1
    out_row, out_col = int(np.clip(out_row, 0, out - 1)), int(np.clip(out_col, 0, out - 1))
    offsets = dilation * np.arange(k)
    rows, cols = np.meshgrid(out_row * stride + offsets, out_col * stride + offsets, indexing="ij")
    taps = np.stack([rows.ravel(), cols.ravel()], axis=1)
    grid = np.zeros((padded, padded), dtype=np.int8)
    grid[pad:pad + n, pad:pad + n] = 1
    grid[taps[:, 0], taps[:, 1]] += 2
    numerator = n + 2 * pad - dilation * (k - 1) - 1
    formula = (f"floor((n + 2p - d(k-1) - 1)/s) + 1 = floor(({n} + 2*{pad} - {dilation}*({k}-1) - 1)/{stride}) + 1"
               f" = floor({numerator}/{stride}) + 1 = {out}")
    latex = (rf"$\lfloor (n + 2p - d(k-1) - 1)/s \rfloor + 1 = \lfloor ({n} + 2\cdot{pad} - {dilation}\cdot({k}-1) - 1)"
             rf"/{stride} \rfloor + 1 = \lfloor {numerator}/{stride} \rfloor + 1 = {out}$")
    return {"ok": True, "message": "", **values, "out": out, "padded": padded, "span": span, "formula": formula,
            "latex": latex, "out_row": out_row, "out_col": out_col, "taps": taps, "grid": grid,
            "real_taps": int((grid == 3).sum())}


class ConvArithmeticFigure(_FigureBase):
    """Padded input (left) with the taps of one output pixel, and the output grid (right)."""

    # 0 padding, 1 input, 2 padding read, 3 input read
    COLOURS = ("#e4e4e4", "#ffffff", "#f4b183", "#4f81bd")

    def __init__(self):
        from matplotlib.collections import LineCollection
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Rectangle

        self.fig = _new_figure((6.4, 3.0))
        self.ax_in, self.ax_out = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1]})
        cmap = ListedColormap(self.COLOURS)
        self.im_in = self.ax_in.imshow(np.zeros((1, 1)), cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest")
        self.im_out = self.ax_out.imshow(np.zeros((1, 1)), cmap=ListedColormap(["#ffffff", "#4f81bd"]),
                                         vmin=-0.5, vmax=1.5, interpolation="nearest")
        self.frame = Rectangle((0, 0), 1, 1, fill=False, edgecolor="black", linewidth=1.5, linestyle="--")
        self.window = Rectangle((0, 0), 1, 1, fill=False, edgecolor="#c00000", linewidth=1.5)
        self.out_frame = Rectangle((0, 0), 1, 1, fill=False, edgecolor="black", linewidth=1.0)
        self.ax_in.add_patch(self.frame)
        self.ax_in.add_patch(self.window)
        self.ax_out.add_patch(self.out_frame)
        for ax in (self.ax_in, self.ax_out):
            ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
            ax.grid(which="minor", color="#999999", linewidth=0.5)
            ax.grid(which="major", visible=False)
        for spine in self.ax_out.spines.values():
            spine.set_visible(False)
        self.ax_out.grid(which="minor", visible=False)  # the output's own lines, drawn in its cells only
        self.out_lines = LineCollection([], colors="#999999", linewidths=0.5)
        self.ax_out.add_collection(self.out_lines)
        self.fig.subplots_adjust(left=0.02, right=0.98, bottom=0.04, top=0.82, wspace=0.12)

    @staticmethod
    def _cells(ax, im, size: int, view: int) -> None:
        """Show a size x size grid of cells in a view x view box (same cell size on both sides)."""
        im.set_extent((-0.5, size - 0.5, size - 0.5, -0.5))
        ax.set_xlim(-0.5, view - 0.5)
        ax.set_ylim(view - 0.5, -0.5)
        ax.set_xticks(np.arange(-0.5, size, 1.0), minor=True)
        ax.set_yticks(np.arange(-0.5, size, 1.0), minor=True)
        ax.set_xticks([])
        ax.set_yticks([])

    def draw(self, state: dict):
        if not state["ok"]:
            return self
        n, p, padded, out, span = state["n"], state["pad"], state["padded"], state["out"], state["span"]
        self.im_in.set_data(state["grid"])
        self._cells(self.ax_in, self.im_in, padded, padded)
        self.frame.set_bounds(p - 0.5, p - 0.5, n, n)
        r0, c0 = state["out_row"] * state["stride"], state["out_col"] * state["stride"]
        self.window.set_bounds(c0 - 0.5, r0 - 0.5, span, span)
        marks = np.zeros((out, out))
        marks[state["out_row"], state["out_col"]] = 1
        self.im_out.set_data(marks)
        self._cells(self.ax_out, self.im_out, out, padded)
        inner = np.arange(0.5, out - 1)
        self.out_lines.set_segments([[(v, -0.5), (v, out - 0.5)] for v in inner] +
                                    [[(-0.5, v), (out - 0.5, v)] for v in inner])
        self.out_frame.set_bounds(-0.5, -0.5, out, out)
        self.ax_in.set_title(f"input {n}x{n}, padded to {padded}x{padded}\n"
                             f"kernel {state['k']}x{state['k']} spans {span}x{span}; "
                             f"{state['real_taps']} of {state['k'] ** 2} taps on real pixels", fontsize=8)
        self.ax_out.set_title(f"output {out}x{out}\nselected pixel ({state['out_row']}, {state['out_col']})",
                              fontsize=8)
        return self


def conv_arithmetic_explorer(n: int = 7, k: int = 3, stride: int = 1, pad: int = 1, dilation: int = 1):
    """Sliders for n, k, stride, pad, dilation and the output pixel; draws which inputs feed that pixel.

    Grey cells are zero padding, white cells the input (dashed frame), blue
    cells the input pixels read by the selected output pixel (orange: padding
    zeros it reads); the red square is the kernel's footprint.  The text line
    shows the output size from :func:`cnncourse.conv.conv_output_size` with the
    numbers put into ``floor((n + 2p - d(k-1) - 1)/s) + 1``.
    """
    import ipywidgets as W

    # 85 px fits the longest label ("output row") without cutting it
    slider = dict(continuous_update=True, style={"description_width": "85px"}, layout=W.Layout(width="265px"))
    controls = {
        "n": W.IntSlider(value=n, min=1, max=16, description="input n", **slider),
        "k": W.IntSlider(value=k, min=1, max=7, description="kernel k", **slider),
        "stride": W.IntSlider(value=stride, min=1, max=4, description="stride s", **slider),
        "pad": W.IntSlider(value=pad, min=0, max=4, description="padding p", **slider),
        "dilation": W.IntSlider(value=dilation, min=1, max=4, description="dilation d", **slider),
        "out_row": W.IntSlider(value=0, min=0, max=15, description="output row", **slider),
        "out_col": W.IntSlider(value=0, min=0, max=15, description="output col", **slider),
    }
    text = W.HTMLMath(value="")
    output = W.Output(layout=W.Layout(min_height="245px"))
    figure = ConvArithmeticFigure()
    box = W.VBox([W.HBox([W.VBox([controls[c] for c in ("n", "k", "stride", "pad")]),
                          W.VBox([controls[c] for c in ("dilation", "out_row", "out_col")])]),
                  text, output])
    busy = []

    def refresh(change=None):
        if busy:  # a slider range changed inside this refresh
            return
        busy.append(True)
        try:
            start = time.perf_counter()
            values = {name: control.value for name, control in controls.items()}
            state = conv_arithmetic_state(values.pop("n"), values.pop("k"), **values)
            if state["ok"]:
                for name in ("out_row", "out_col"):
                    controls[name].max = state["out"] - 1
                    controls[name].value = state[name]
                text.value = f"output size per axis: {state['latex']}"
                figure.draw(state)
                _show_png(output, figure.png(), state["formula"])
            else:
                text.value = "output size per axis: (none)"
                _show_message(output, state["message"])
            box.state = state
            box.timings.append(time.perf_counter() - start)
        finally:
            busy.clear()

    for control in controls.values():
        control.observe(refresh, names="value")
    _attach(box, controls=controls, output=output, figure=figure, refresh=refresh)
    refresh()
    return box


# --------------------------------------------------------------------------- (2) filter playground


def _embed3(w) -> np.ndarray:
    """Put a small kernel in the centre of a 3x3 one (a 1x2 [-1, 1] becomes a forward difference)."""
    w = np.atleast_2d(np.asarray(w, dtype=float))
    out = np.zeros((3, 3))
    r0, c0 = 1 - (w.shape[0] - 1) // 2, 1 - (w.shape[1] - 1) // 2
    out[r0:r0 + w.shape[0], c0:c0 + w.shape[1]] = w
    return out


#: Named 3x3 kernels of the filter playground (correlation weights, as in :mod:`cnncourse.filters`).
PLAYGROUND_KERNELS = {
    "blur": filters.blur,
    "gaussian (σ=1, 3x3)": lambda: filters.gaussian2d(1.0, m=1),
    "sharpen": filters.sharpen2d,
    "laplacian": filters.laplacian2d,
    "laplacian diagonal": filters.laplacian2d_diagonal,
    "sobel x": filters.sobel_x,
    "sobel y": filters.sobel_y,
    "horizontal difference [-1, 1]": lambda: _embed3(filters.horizontal_difference()),
    "identity": lambda: _embed3([[1.0]]),
}


def filter_playground_state(image, kernel) -> dict:
    """Filter ``image`` with ``kernel`` (correlation, "same" size, replicate boundary).

    Returns:
        dict with ``ok`` and ``message`` (why nothing could be computed), and when
        ok: ``kernel``, ``filtered`` (same shape as the image), ``kernel_sum``,
        ``diverging`` (the taps sum to 0: show the result on a symmetric
        red-blue scale, since edges come out positive and negative) and
        ``clim`` (the colour limits).
    """
    try:
        kernel = np.asarray(kernel, dtype=float)
    except (TypeError, ValueError):
        return {"ok": False, "message": f"The kernel must be numbers, got {kernel!r}."}
    if kernel.ndim != 2 or kernel.size == 0:
        return {"ok": False, "message": f"The kernel must be a 2D array, got shape {kernel.shape}."}
    if not np.isfinite(kernel).all():
        return {"ok": False, "message": "The kernel contains a value that is not a finite number (nan or inf)."}
    try:
        filtered = conv.correlate2d(image, kernel, mode="same", boundary="replicate")
    except (TypeError, ValueError) as err:
        return {"ok": False, "message": f"Cannot filter this image: {err}."}
    total = float(kernel.sum())
    diverging = abs(total) < 1e-9
    if diverging:
        vmax = float(np.abs(filtered).max()) or 1.0
        clim = (-vmax, vmax)
    else:
        lo, hi = float(filtered.min()), float(filtered.max())
        clim = (lo, hi if hi > lo else lo + 1.0)
    return {"ok": True, "message": "", "kernel": kernel, "filtered": filtered, "kernel_sum": total,
            "diverging": diverging, "clim": clim}


class FilterPlaygroundFigure(_FigureBase):
    """The image (left) and the filtered image (right), updated in place."""

    def __init__(self, image):
        self.fig = _new_figure((6.0, 3.1))
        self.ax_in, self.ax_out = self.fig.subplots(1, 2)
        self.ax_in.imshow(image, cmap="gray")
        self.ax_in.set_title("image", fontsize=9)
        self.im_out = self.ax_out.imshow(np.zeros_like(image), cmap="gray")
        for ax in (self.ax_in, self.ax_out):
            ax.axis("off")
        self.fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86, wspace=0.04)

    def draw(self, state: dict):
        if not state["ok"]:
            return self
        self.im_out.set_data(state["filtered"])
        self.im_out.set_cmap("RdBu_r" if state["diverging"] else "gray")
        self.im_out.set_clim(*state["clim"])
        scale = "red +, blue −" if state["diverging"] else "gray, auto-scaled"
        self.ax_out.set_title(f"filtered (taps sum to {state['kernel_sum']:.3g}; {scale})", fontsize=9)
        return self


def _as_gray(image):
    if image is None:
        from . import data

        return data.load_image("camera", size=(128, 128))
    image = np.asarray(image, dtype=float)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2:
        raise ValueError(f"filter_playground needs a 2D gray image (or H x W x 3 colour), got shape {image.shape}")
    return image


def filter_playground(image=None, kernel: str = "sobel x"):
    """Pick a named 3x3 kernel or type nine numbers; see the image and the filtered image side by side.

    Args:
        image: a 2D gray image (an ``(H, W, 3)`` colour image is averaged to
            gray); default ``cc.data.load_image("camera", size=(128, 128))``.
        kernel: the name of the kernel shown first (a key of :data:`PLAYGROUND_KERNELS`).

    Filtering is :func:`cnncourse.conv.correlate2d` with ``mode="same"`` and
    ``boundary="replicate"``.  Editing a number switches the menu to "custom".
    """
    import ipywidgets as W

    image = _as_gray(image)
    names = [*PLAYGROUND_KERNELS, "custom"]
    if kernel not in PLAYGROUND_KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(PLAYGROUND_KERNELS)}")
    menu = W.Dropdown(options=names, value=kernel, description="kernel", layout=W.Layout(width="300px"))
    cells = [W.FloatText(value=0.0, step=0.5, layout=W.Layout(width="72px")) for _ in range(9)]
    grid = W.GridBox(cells, layout=W.Layout(grid_template_columns="repeat(3, 78px)"))
    text = W.HTML(value="")
    output = W.Output(layout=W.Layout(min_height="250px"))
    figure = FilterPlaygroundFigure(image)
    box = W.VBox([W.HBox([W.VBox([menu, text]), grid]), output])
    controls = {"kernel": menu, **{f"w{i}{j}": cells[3 * i + j] for i in range(3) for j in range(3)}}
    busy = []

    def redraw():
        start = time.perf_counter()
        state = filter_playground_state(image, np.array([c.value for c in cells]).reshape(3, 3))
        if state["ok"]:
            figure.draw(state)
            text.value = (f"taps sum to <b>{state['kernel_sum']:.4g}</b>; output range "
                          f"[{state['filtered'].min():.3g}, {state['filtered'].max():.3g}]")
            _show_png(output, figure.png(), f"filtered with {menu.value}")
        else:
            text.value = "no output"
            _show_message(output, state["message"])
        box.state = state
        box.timings.append(time.perf_counter() - start)

    def on_menu(change=None):
        if busy or menu.value == "custom":
            return
        busy.append(True)
        try:
            for cell, value in zip(cells, PLAYGROUND_KERNELS[menu.value]().ravel()):
                cell.value = float(round(value, 6))
        finally:
            busy.clear()
        redraw()

    def on_cell(change):
        if busy:
            return
        busy.append(True)
        try:
            menu.value = "custom"
        finally:
            busy.clear()
        redraw()

    menu.observe(on_menu, names="value")
    for cell in cells:
        cell.observe(on_cell, names="value")
    _attach(box, controls=controls, output=output, figure=figure, refresh=on_menu)
    box.image = image
    on_menu()
    return box


# --------------------------------------------------------------------------- (3) receptive fields

#: Example stacks for the receptive-field explorer (text understood by :func:`cnncourse.receptive.parse_layers`).
RECEPTIVE_PRESETS = {
    "3x3 convs, pool every two": "conv3, conv3, pool2, conv3, conv3, pool2, conv3, conv3, pool2",
    "plain 3x3 convs": "conv3, conv3, conv3, conv3, conv3, conv3",
    "stride-2 3x3 convs": "conv3s2, conv3s2, conv3s2, conv3s2, conv3s2",
    "WaveNet dilations (k=2)": "conv2d1, conv2d2, conv2d4, conv2d8, conv2d16, conv2d32",
    "AlexNet conv/pool layers": "conv11s4, pool3s2, conv5, pool3s2, conv3, conv3, conv3, pool3s2",
}


def receptive_field_state(text: str, depth: int | None = None) -> dict:
    """Parse a layer list and compute the receptive field and jump after each layer.

    Args:
        text: e.g. ``"conv3, conv3, pool2, conv3"`` (see :func:`cnncourse.receptive.parse_layers`).
        depth: the layer to report (1 = first layer; None: the last), clipped to the stack.

    Returns:
        dict with ``ok``/``message``, and when ok: ``layers`` (tuples),
        ``labels`` (the tokens), ``rf`` and ``jump`` (arrays of length L + 1,
        index 0 being the input itself: rf 1, jump 1) and ``depth``.
    """
    try:
        layers = receptive.parse_layers(text)
    except (TypeError, ValueError) as err:
        return {"ok": False, "message": str(err)}
    rows = receptive.receptive_field(layers)
    rf = np.array([1] + [r for r, _ in rows])
    jump = np.array([1] + [j for _, j in rows])
    labels = [f"{kind}{k}" + (f"s{s}" if s != (1 if kind == "conv" else k) else "") + (f"d{d}" if d != 1 else "")
              for kind, k, s, d in layers]
    depth = len(layers) if depth is None else int(np.clip(depth, 1, len(layers)))
    return {"ok": True, "message": "", "layers": layers, "labels": labels, "rf": rf, "jump": jump, "depth": depth}


class ReceptiveFieldFigure(_FigureBase):
    """Receptive field and jump against depth; the chosen depth is circled."""

    def __init__(self):
        self.fig = _new_figure((6.4, 2.8))
        self.ax = self.fig.subplots()
        (self.line_rf,) = self.ax.plot([0], [1], "o-", color="C0", label="receptive field (pixels)")
        (self.line_jump,) = self.ax.plot([0], [1], "s--", color="C1", label="jump = product of strides")
        (self.mark,) = self.ax.plot([0], [1], "o", markersize=12, markerfacecolor="none", markeredgecolor="C3")
        self.ax.set_xlabel("depth (layers)")
        self.ax.legend(loc="upper left", fontsize=8)
        self.fig.subplots_adjust(left=0.09, right=0.98, bottom=0.30, top=0.88)

    def draw(self, state: dict):
        if not state["ok"]:
            return self
        depths = np.arange(len(state["rf"]))
        self.line_rf.set_data(depths, state["rf"])
        self.line_jump.set_data(depths, state["jump"])
        d = state["depth"]
        self.mark.set_data([d], [state["rf"][d]])
        self.ax.set_xticks(depths)
        self.ax.set_xticklabels(["input", *state["labels"]], rotation=45, ha="right", fontsize=8)
        self.ax.set_xlim(-0.3, depths[-1] + 0.3)
        self.ax.set_ylim(0, 1.08 * max(state["rf"].max(), state["jump"].max()) + 1)
        self.ax.set_title(f"after layer {d} ({state['labels'][d - 1]}): receptive field {state['rf'][d]}, "
                          f"jump {state['jump'][d]}", fontsize=9)
        return self


def receptive_field_explorer(text: str | None = None):
    """Type a stack of layers (or pick a preset) and watch the receptive field and jump grow with depth.

    Layers are written ``conv<k>``/``pool<k>`` with optional ``s<stride>``
    and ``d<dilation>``, separated by commas (``"conv3, conv3s2, pool2,
    conv2d4"``); the depth slider picks the layer reported in the title.
    Numbers come from :func:`cnncourse.receptive.receptive_field`.
    """
    import ipywidgets as W

    first = next(iter(RECEPTIVE_PRESETS))
    preset = W.Dropdown(options=[*RECEPTIVE_PRESETS, "custom"], value=first if text is None else "custom",
                        description="preset", layout=W.Layout(width="360px"))
    field = W.Text(value=RECEPTIVE_PRESETS[first] if text is None else text, description="layers",
                   continuous_update=False, layout=W.Layout(width="620px"))
    depth = W.IntSlider(value=1, min=1, max=1, description="depth", layout=W.Layout(width="360px"))
    table = W.HTML(value="")
    output = W.Output(layout=W.Layout(min_height="230px"))
    figure = ReceptiveFieldFigure()
    box = W.VBox([preset, field, depth, output, table])
    controls = {"preset": preset, "layers": field, "depth": depth}
    busy = []

    def refresh(change=None):
        if busy:
            return
        busy.append(True)
        try:
            start = time.perf_counter()
            new_text = change is not None and change["owner"] is not depth
            state = receptive_field_state(field.value, None if new_text or box.state is None else depth.value)
            if state["ok"]:
                depth.max = len(state["layers"])
                depth.value = state["depth"]
                figure.draw(state)
                _show_png(output, figure.png(), f"receptive field {state['rf'][-1]}, jump {state['jump'][-1]}")
                cells = "".join(
                    f"<tr><td>{i}</td><td>{lab}</td><td>{k}</td><td>{s}</td><td>{d}</td>"
                    f"<td><b>{r}</b></td><td>{j}</td></tr>"
                    for i, (lab, (_, k, s, d), r, j) in enumerate(
                        zip(state["labels"], state["layers"], state["rf"][1:], state["jump"][1:]), start=1))
                table.value = (_TABLE_STYLE + "<table class='cc-rf'><tr><th>depth</th><th>layer</th><th>k</th><th>stride</th><th>dilation</th>"
                               f"<th>receptive field</th><th>jump</th></tr>{cells}</table>")
            else:
                table.value = ""
                _show_message(output, state["message"])
            box.state = state
            box.timings.append(time.perf_counter() - start)
        finally:
            busy.clear()

    def on_preset(change):
        if preset.value != "custom" and field.value != RECEPTIVE_PRESETS[preset.value]:
            field.value = RECEPTIVE_PRESETS[preset.value]  # triggers refresh

    def on_field(change):
        if preset.value != "custom" and field.value != RECEPTIVE_PRESETS.get(preset.value):
            preset.value = "custom"
        refresh(change)

    preset.observe(on_preset, names="value")
    field.observe(on_field, names="value")
    depth.observe(refresh, names="value")
    _attach(box, controls=controls, output=output, figure=figure, refresh=refresh)
    refresh()
    return box
