"""routing's settings on top of the shared ones."""

from datetime import timedelta
from typing import Any

from pydantic import field_validator

from shared.business_hours import CalendarError, parse_calendar
from shared.settings import CommonSettings, own

# Mondays to Fridays 09:00-21:00, weekends 10:00-18:00, Beijing time (learners study evenings
# and weekends); holidays are the deployment's to list.
DEFAULT_CALENDARS: dict[str, Any] = {
    "default": {
        "timezone": "Asia/Shanghai",
        "week": {
            **{d: ["09:00-21:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "sat": ["10:00-18:00"],
            "sun": ["10:00-18:00"],
        },
        "holidays": [],
    }
}


class RoutingSettings(CommonSettings):
    http_port: int = own("routing", "http_port", 18083, "HTTP port.")
    sweep_interval_seconds: float = own(
        "routing",
        "sweep_interval_seconds",
        2.0,
        "How often routing re-syncs Redis and drains the queues as a safety net.",
    )
    reconcile_interval_seconds: float = own(
        "routing",
        "reconcile_interval_seconds",
        5.0,
        "How often routing compares Redis load with committed assignments and corrects drift; "
        "a slot held without an assignment is freed on the second look in a row.",
    )
    reconcile_lock_timeout_seconds: float = own(
        "routing",
        "reconcile_lock_timeout_seconds",
        2.0,
        "Longest a reconciliation or rebuild waits for routing's transactions in flight (new "
        "ones wait behind it meanwhile); past it, that round is skipped.",
    )
    review_below: float = own(
        "routing",
        "review_below",
        0.6,
        "A new ticket whose triage confidence is below this still routes, flagged for review.",
    )
    presence_ttl_seconds: float | None = own(
        "routing",
        "presence_ttl_seconds",
        None,
        "An agent's presence lapses this long after their last heartbeat or presence change "
        "(POST /v1/agents/{id}/heartbeat): they get no new tickets until the next one. Unset: "
        "presence lasts until changed; set it (e.g. 900) once agents' clients send heartbeats.",
    )

    status_interval_seconds: float = own(
        "routing",
        "status_interval_seconds",
        30.0,
        "How often routing announces every agent's status (agent.status: presence, load "
        "against capacity) in full; a change is announced within the sweep interval anyway.",
    )

    @property
    def presence_ttl(self) -> timedelta | None:
        seconds = self.presence_ttl_seconds
        return None if seconds is None else timedelta(seconds=seconds)

    first_response_minutes: dict[str, float] = own(
        "routing",
        "first_response_minutes",
        {"urgent": 30, "high": 120, "medium": 480, "low": 1440},
        "First-response target per priority (a JSON object), R5.1.",
    )
    resolution_minutes: dict[str, float] = own(
        "routing",
        "resolution_minutes",
        {"urgent": 240, "high": 1440, "medium": 4320, "low": 7200},
        "Resolution target per priority (a JSON object), R5.1.",
    )
    # ---- SLA clocks (services.routing.sla) ----
    sla_warn_share: float = own(
        "routing",
        "sla_warn_share",
        0.75,
        "Share of a target after which the assignee is warned (R5.2).",
    )
    sla_management_share: float = own(
        "routing",
        "sla_management_share",
        1.5,
        "Share of a target after which an urgent or complaint ticket escalates to management "
        "(admins), the second level after the supervisor's at 100 %.",
    )
    sla_calendars: dict[str, Any] = own(
        "routing",
        "sla_calendars",
        DEFAULT_CALENDARS,
        'Business hours per team (a JSON object: team -> "24x7" or {"timezone", "week": '
        '{"mon": ["09:00-18:00"], ...}, "holidays": ["YYYY-MM-DD", ...]}); "default" for the '
        "teams not named. Urgent tickets always run 24x7.",
    )
    sla_overflow: dict[str, str] = own(
        "routing",
        "sla_overflow",
        {},
        'Backup team per team (JSON, e.g. {"tech_support": "customer_service"}): a queued ticket '
        "predicted to breach its first response moves to the backup's queue.",
    )
    sla_throughput_window_minutes: float = own(
        "routing",
        "sla_throughput_window_minutes",
        30.0,
        "A team's recent throughput, for breach prediction, counts assignments over this window.",
    )
    sla_predict_interval_seconds: float = own(
        "routing",
        "sla_predict_interval_seconds",
        15.0,
        "How often queued tickets' first responses are predicted (sla.at_risk).",
    )
    sla_batch: int = own(
        "routing", "sla_batch", 500, "Most timers one SLA loop fires in one transaction."
    )

    @field_validator("sla_calendars")
    @classmethod
    def _calendars(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "default" not in value:
            raise ValueError('name a "default" calendar for the teams not named')
        for team, spec in value.items():
            try:
                parse_calendar(spec)
            except CalendarError as exc:
                raise ValueError(f"{team}: {exc}") from None
        return value

    @field_validator("sla_warn_share", "sla_management_share")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 < value < 10:
            raise ValueError("a share of the target, e.g. 0.75 or 1.5")
        return value
