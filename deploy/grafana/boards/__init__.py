"""careloop's Grafana dashboards, one module each."""

from collections.abc import Callable

from grafana_foundation_sdk.builders.dashboard import Dashboard

from deploy.grafana.boards.incidents import incidents
from deploy.grafana.boards.overview import overview
from deploy.grafana.boards.pipeline import pipeline
from deploy.grafana.boards.sla import sla
from deploy.grafana.boards.teams import teams

DASHBOARDS: tuple[Callable[[], Dashboard], ...] = (overview, sla, teams, pipeline, incidents)
