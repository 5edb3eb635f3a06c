"""The reports' charts: static SVG from matplotlib's object API (no pyplot, no global state),
text drawn as paths so that the Chinese labels need no font where the SVG is shown."""

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

matplotlib.use("Agg")  # never a GUI backend: reports are made in services and commands

# Chinese glyphs come from the first CJK font present (bin/careloop installs WenQuanYi).
STYLE: dict[RcKeyType, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": [
        "WenQuanYi Micro Hei",
        "Noto Sans CJK SC",
        "Noto Serif CJK SC",
        "DejaVu Sans",
    ],
    "font.size": 9,
    "axes.unicode_minus": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "path",
}
BLUE, RED, GREEN, GREY = "#2f6db5", "#c8433a", "#3a8f4c", "#8a8f98"


def _svg(fig: Figure, name: str) -> str:
    """The figure as an SVG document, reproducible (no date) and with ids of its own."""
    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": name}):
        fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    return out.getvalue()


def volume(
    steps: Sequence[datetime],
    tickets: Sequence[int],
    complaints: Sequence[int],
    *,
    step: str,
    title: str,
    legend: tuple[str, str],
) -> str:
    """Tickets per step as bars, complaints as a line on their own axis."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.2, 2.8))
        ax = fig.add_subplot()
        fmt = {"hour": "%H:00", "day": "%m-%d", "week": "%m-%d"}[step]
        names = [s.strftime(fmt) for s in steps]
        x = range(len(names))
        ax.bar(x, tickets, color=BLUE, label=legend[0])
        ax.set_title(title, loc="left")
        ax.set_xticks(list(x), names, rotation=90 if len(names) > 12 else 0)
        if len(names) > 16:  # a label every few steps: they would overlap
            for i, label in enumerate(ax.get_xticklabels()):
                label.set_visible(i % max(1, len(names) // 16) == 0)
        ax2 = ax.twinx()
        ax2.plot(list(x), complaints, color=RED, marker="o", markersize=3, label=legend[1])
        ax2.set_ylim(bottom=0, top=max(1, *complaints) * 1.3)
        ax2.spines["top"].set_visible(False)
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(handles, legend, loc="upper left", frameon=False, ncols=2)
        ax.set_ylim(top=max(1, *tickets) * 1.25)
        for counted in (ax.yaxis, ax2.yaxis):  # counts: no 0.2 of a complaint
            counted.set_major_locator(MaxNLocator(integer=True))
        return _svg(fig, "volume")


def bars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    name: str,
    limit: float | None = None,
    target: float | None = None,
    fmt: str = "{:.0f}",
) -> str:
    """Horizontal bars, largest on top, each with its value; `target` as a dashed line."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(3.5, 0.45 + 0.28 * max(len(items), 1)))
        ax = fig.add_subplot()
        labels = [label for label, _ in items][::-1]
        values = [value for _, value in items][::-1]
        drawn = ax.barh(labels, values, color=BLUE)
        ax.bar_label(drawn, labels=[fmt.format(v) for v in values], padding=2, fontsize=8)
        top = limit if limit is not None else max([1.0, *values]) * 1.2
        ax.set_xlim(0, top)
        if target is not None:
            ax.axvline(target, color=GREEN, linestyle="--", linewidth=1)
        ax.set_title(title, loc="left")
        return _svg(fig, name)


def columns(
    items: Sequence[tuple[str, float]], *, title: str, name: str, colors: Sequence[str] = ()
) -> str:
    """Vertical bars (a distribution), each with its count."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(3.5, 2.2))
        ax = fig.add_subplot()
        labels = [label for label, _ in items]
        values = [value for _, value in items]
        drawn = ax.bar(range(len(items)), values, color=list(colors) or BLUE)
        ax.set_xticks(range(len(items)), labels)
        ax.bar_label(drawn, labels=[f"{v:.0f}" for v in values], padding=2, fontsize=8)
        ax.set_ylim(0, max([1.0, *values]) * 1.25)
        ax.set_title(title, loc="left")
        return _svg(fig, name)
