"""desk's settings on top of the shared ones."""

import secrets
from datetime import timedelta
from typing import Annotated, NamedTuple

from pydantic import Field, SecretStr

from shared.settings import CommonSettings, own

# Without a configured secret, links are signed with one made at start: they work until desk
# restarts and only on this replica. The local stack and every deployment set one.
_EPHEMERAL = secrets.token_urlsafe(32)


class Retry(NamedTuple):
    """How an unreached call-back is tried again: up to `attempts` calls, `after` apart."""

    attempts: int
    after: timedelta


class DeskSettings(CommonSettings):
    http_port: int = own("desk", "http_port", 18082, "HTTP port.")
    auto_close_days: float = own(
        "desk",
        "auto_close_days",
        7,
        "A resolved ticket the learner does not answer closes after this many days.",
    )
    auto_close_interval_seconds: float = own(
        "desk", "auto_close_interval_seconds", 60, "How often desk looks for tickets to auto-close."
    )
    callback_sample: Annotated[float, Field(ge=0, le=1)] = own(
        "desk",
        "callback_sample",
        0.05,
        "The share of closed tickets (0-1, chosen by ticket id) that get a call-back task in "
        "the agents' list; every closed complaint gets one whatever this says.",
    )
    callback_attempts: Annotated[int, Field(ge=1, le=10)] = own(
        "desk",
        "callback_attempts",
        3,
        "A learner a call-back did not reach is called again, up to this many calls in all; "
        "then the call-back is done, unreached.",
    )
    callback_retry_hours: Annotated[float, Field(gt=0)] = own(
        "desk",
        "callback_retry_hours",
        24,
        "An unreached call-back is due again this many hours after the call.",
    )

    @property
    def callback_retry(self) -> Retry:
        return Retry(self.callback_attempts, timedelta(hours=self.callback_retry_hours))

    link_secret: SecretStr = own(
        "desk",
        "link_secret",
        SecretStr(_EPHEMERAL),
        "Signs learners' links to their tickets' pages; the same on every desk replica. "
        "Unset: a random one per process (links die with it).",
    )
    link_max_age_days: float = own(
        "desk", "link_max_age_days", 180, "How long a learner's link to a ticket's page works."
    )
    follow_up_days: float = own(
        "desk",
        "follow_up_days",
        7,
        "A WeChat, Weibo or SMS message continues the learner's latest ticket on that channel "
        "if it is not closed and changed within this many days; else it opens a new ticket.",
    )
    duplicate_window_seconds: float = own(
        "desk",
        "duplicate_window_seconds",
        600,
        "The same learner's same text on another channel within this window is one ticket.",
    )
    # ---- deskops: search and retention (issue 9) ----
    search_index_interval_seconds: float = own(
        "desk",
        "search_index_interval_seconds",
        2,
        "How often desk makes the search words of tickets created or changed since.",
    )
    archive_after_days: float = own(
        "desk",
        "archive_after_days",
        90,
        "A closed ticket leaves the working lists (archived) this many days after it closed.",
    )
    retention_days: float = own(
        "desk",
        "retention_days",
        730,
        "This many days after a ticket closed, its learner's personal data is pseudonymised: "
        "name, contacts, attachments, and e-mail addresses and phone numbers in the text (R7.3).",
    )
    retention_interval_seconds: float = own(
        "desk",
        "retention_interval_seconds",
        3600,
        "How often desk archives and pseudonymises tickets that are due.",
    )

    public_url_override: str | None = own(
        "desk",
        "public_url",
        None,
        "Where learners reach desk's pages (behind a proxy: https://help.example.com); "
        "unset: CARELOOP_PUBLIC_BASE_URL and the HTTP port.",
    )

    @property
    def public_url(self) -> str:
        return self.public_url_override or f"{self.public_base_url}:{self.http_port}"
