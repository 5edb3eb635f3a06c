"""Panel and dashboard builders giving every careloop panel a title, a unit and a reading guide."""

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# Panels name the datasource through a variable, so the dashboards work in any Grafana that
# has a Prometheus datasource, not only in the one provisioned with them.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "careloop"

Panel = timeseries.Panel | stat.Panel | table.Panel
Steps = Sequence[tuple[float | None, str]]

# Threshold colours for a reading where higher is better (attainment, CSAT) and lower is better.
GREEN, AMBER, RED = "green", "orange", "red"


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL expression of a panel and how its series are named in the legend."""

    expr: str
    legend: str = ""


def _targets(queries: Sequence[Query], *, instant: bool = False) -> list[Dataquery]:
    targets = []
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        target = Dataquery().expr(q.expr).ref_id(ref).datasource(DATASOURCE)
        if q.legend:
            target = target.legend_format(q.legend)
        if instant:
            target = target.instant().format(PromQueryFormat.TABLE)
        targets.append(target)
    return targets


def _thresholds(steps: Steps) -> ThresholdsConfig:
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def graph(
    title: str,
    *,
    unit: str,
    description: str,
    queries: Sequence[Query],
    stacked: bool = False,
    steps: Steps = (),
    span: int = 12,
) -> timeseries.Panel:
    """A time series: how a reading moved over the dashboard's time range."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(list(_targets(queries)))
        .span(span)
        .height(8)
        .legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
    )
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(40)
    if steps:
        panel = panel.thresholds(_thresholds(steps))
    return panel


def single(
    title: str,
    *,
    unit: str,
    description: str,
    query: Query,
    steps: Steps,
    span: int = 6,
) -> stat.Panel:
    """One number, coloured by how good it is (steps: the colour from each value up)."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(list(_targets([query])))
        .thresholds(_thresholds(steps))
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.AREA)
        .span(span)
        .height(5)
    )


def listing(
    title: str,
    *,
    unit: str,
    description: str,
    query: Query,
    span: int = 24,
) -> table.Panel:
    """A table of the series an instant query returns now, one row each."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(list(_targets([query], instant=True)))
        .span(span)
        .height(8)
    )


def label_variable(name: str, *, label: str, selector: str, description: str) -> QueryVariable:
    """A multi-value dashboard variable listing the values `name` takes on `selector`."""
    return (
        QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query({"query": f"label_values({selector}, {name})", "refId": "variable"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def board(
    *,
    uid: str,
    title: str,
    description: str,
    variables: Sequence[QueryVariable] = (),
    rows: Sequence[tuple[str, Sequence[Panel]]],
) -> Dashboard:
    """A careloop dashboard: datasource picker, `variables`, then each row's panels.

    Grafana needs a panel id unique within its dashboard; the SDK leaves ids unset, so they
    are numbered here in reading order."""
    dashboard = (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(
            DashboardLink("careloop")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(
            DatasourceVariable("datasource")
            .label("Prometheus")
            .type("prometheus")
            .description("The Prometheus that scrapes careloop's services.")
        )
    )
    for variable in variables:
        dashboard = dashboard.with_variable(variable)
    number = 0
    for row_title, panels in rows:
        number += 1
        dashboard = dashboard.with_row(Row(row_title).id(number))
        for panel in panels:
            number += 1
            dashboard = dashboard.with_panel(panel.id(number))
    return dashboard
