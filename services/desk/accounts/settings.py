"""Accounts' settings, under CARELOOP_DESK_ like the rest of desk's."""

from datetime import timedelta

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.ratelimit import TrustedProxies
from shared.settings import Environment, own


class AccountSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    session_idle_minutes: float = own(
        "desk", "session_idle_minutes", 60, "A session not used for this long ends."
    )
    session_hours: float = own(
        "desk", "session_hours", 12, "A session ends this long after login, used or not."
    )
    login_failures_per_account: int = own(
        "desk",
        "login_failures_per_account",
        5,
        "Failed logins for one user name within the lockout window before it is locked (0: never).",
    )
    login_failures_per_address: int = own(
        "desk",
        "login_failures_per_address",
        20,
        "Failed logins from one client address within the lockout window before it is locked "
        "(0: never).",
    )
    lockout_minutes: float = own(
        "desk",
        "lockout_minutes",
        15,
        "The sliding window the failed logins are counted in: a lock lifts as they leave it.",
    )
    secure_cookies: bool | None = own(
        "desk",
        "secure_cookies",
        None,
        "Session cookies only over HTTPS; unset: on, except in a local run (plain HTTP).",
    )
    trusted_proxies: TrustedProxies = own(
        "desk",
        "trusted_proxies",
        (),
        "Proxies whose X-Forwarded-For names the client, for the per-address lockout "
        "(addresses or networks, comma-separated).",
    )

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.session_idle_minutes)

    @property
    def absolute(self) -> timedelta:
        return timedelta(hours=self.session_hours)

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.lockout_minutes)

    def secure(self, env: Environment) -> bool:
        return (
            self.secure_cookies if self.secure_cookies is not None else env is not Environment.LOCAL
        )
