"""A gathered report as HTML (a Jinja2 template, charts as SVG images) and as PDF (WeasyPrint)."""

import base64
import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.metrics.reports import charts
from services.metrics.reports.domain import KPIS, Change, Verdict, meets_target
from services.metrics.reports.gather import Report
from services.metrics.reports.labels import translator

TEMPLATES = Path(__file__).with_name("templates")
# The summary's rows, in the order managers read them (seed 004: satisfaction, resolution).
SUMMARY = (
    "tickets",
    "satisfaction",
    "csat_overall",
    "resolution_rate",
    "first_contact_resolution",
    "first_response_sla",
    "resolution_sla",
    "first_response_median",
    "resolution_median",
    "reopen_rate",
    "repeat_rate",
    "complaints",
    "complaint_rate",
    "open_at_end",
    "surveys",
)
# The periodic survey's dimensions, in the order the report's follow-up table shows them.
PERIODIC_SCORES = (
    "overall",
    "response_speed",
    "problem_solving",
    "attitude",
    "teacher_level",
    "teaching_method",
    "teaching_attitude",
)
EFFICIENCY = (
    "first_response_median",
    "first_response_p90",
    "first_response_sla",
    "resolution_median",
    "resolution_p90",
    "resolution_sla",
)
SCORE_COLORS = (charts.RED, charts.RED, charts.GREY, charts.BLUE, charts.GREEN)


def number(key: str, value: float | None) -> str:
    """A KPI's value with its unit: `92.5 %`, `35 min`, `4.2 h`, `4.31`, `120`."""
    if value is None:
        return "–"
    unit = KPIS[key].unit if key in KPIS else "n"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "min":
        return f"{value:.0f} min"
    if unit == "h":
        return f"{value:.1f} h"
    if unit == "score":
        return f"{value:.2f}"
    return f"{value:.0f}"


def delta(key: str, c: Change) -> str:
    """`▲ 2.1 pp`, `▼ 12 (-8 %)`, `→`: percentages move in points, counts also relatively."""
    if c.delta is None:
        return ""
    if c.arrow == "→":
        return "→"
    unit = KPIS[key].unit
    size = abs(c.delta)
    if unit == "%":
        return f"{c.arrow} {size:.1f} pp"
    text = f"{c.arrow} {number(key, size)}"
    if c.relative is not None and unit == "n":
        text += f" ({c.relative:+.0f} %)"
    return text


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def chart_images(report: Report, word: Any) -> dict[str, str]:
    """Every chart of the report, as data URIs an <img> shows in a browser, a mail reader
    that opens the HTML, and WeasyPrint."""
    made = {
        "volume": charts.volume(
            [s["at"] for s in report.series],
            [s["tickets"] for s in report.series],
            [s["complaints"] for s in report.series],
            step=report.step,
            title=word("chart_volume"),
            legend=(word("tickets"), word("complaints")),
        ),
        "channel": charts.bars(
            [(word(r["value"]), r["tickets"]) for r in report.breakdowns["channel"]],
            title=word("chart_channel"),
            name="channel",
        ),
        "category": charts.bars(
            [(word(r["value"]), r["tickets"]) for r in report.breakdowns["category"]],
            title=word("chart_category"),
            name="category",
        ),
        "dimensions": charts.bars(
            [(word(k), v or 0.0) for k, v in report.scores.items()],
            title=word("chart_dimensions"),
            name="dimensions",
            limit=5.0,
            target=4.5,
            fmt="{:.2f}",
        ),
        "scores": charts.columns(
            [(str(s), report.distribution.get(s, 0)) for s in range(1, 6)],
            title=word("chart_scores"),
            name="scores",
            colors=SCORE_COLORS,
        ),
        "groups": charts.bars(
            [
                (word(r["value"]), r["satisfied_share"] or 0.0)
                for d in ("tier", "channel")
                for r in report.satisfaction.get(d, [])
            ],
            title=word("chart_groups"),
            name="groups",
            limit=100.0,
            target=KPIS["satisfaction"].target,
            fmt="{:.0f} %",
        ),
    }
    return {name: _data_uri(svg) for name, svg in made.items()}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html", "j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = lambda value, key: number(key, value)
    return env


def html(report: Report, *, language: str) -> str:
    word = translator(language)
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            r=report,
            w=word,
            lang="en" if language == "en" else "zh",
            charts=chart_images(report, word),
            summary=SUMMARY,
            efficiency=EFFICIENCY,
            periodic_scores=PERIODIC_SCORES,
            kpis=KPIS,
            delta=delta,
            number=number,
            meets_target=meets_target,
            Verdict=Verdict,
        )
    )


def pdf(page: str) -> bytes:
    """The HTML as a PDF. WeasyPrint (and the Pango it loads) is imported when a PDF is made,
    so a process that never prints one does not need it; its step-by-step INFO lines and
    fontTools' would drown the service's own log."""
    from weasyprint import HTML

    for chatty in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(chatty).setLevel(logging.WARNING)

    document: bytes = HTML(string=page, base_url=str(TEMPLATES)).write_pdf()
    return document
