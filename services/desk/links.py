"""The learner's signed link to their ticket's page: every message careloop sends carries one.

The link is the learner's credential for that one ticket, so it is signed (itsdangerous,
HMAC-SHA1 over the ticket id and the time it was made) and ages out: each new message
carries a fresh one, and an old one opens a page saying so rather than the ticket.
"""

from dataclasses import dataclass
from uuid import UUID

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.desk.domain import NotFound
from shared.settings import Environment

# Only for a local run: a production desk refuses to start with it (see `Links.from_settings`).
LOCAL_SECRET = "careloop-local-portal-secret"
SALT = "careloop.portal.v1"


class LinkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELOOP_PORTAL_", extra="ignore")

    secret: SecretStr = Field(
        SecretStr(LOCAL_SECRET),
        description="Signs the learners' portal links; at least 32 random characters in "
        "production (the local default is refused there). Changing it voids every link sent.",
    )
    max_age_days: float = Field(
        90, description="A portal link older than this opens an 'expired' page instead."
    )


class LinkExpired(NotFound):
    """The link was careloop's but is older than the portal allows."""


class LinkInvalid(NotFound):
    """The link was not made by careloop (or was cut short)."""


@dataclass(frozen=True)
class Links:
    """Makes and checks portal links with one secret."""

    secret: str
    max_age_seconds: int
    public_url: str

    @classmethod
    def from_settings(cls, settings: LinkSettings, *, env: Environment, public_url: str) -> "Links":
        secret = settings.secret.get_secret_value()
        if env is Environment.PRODUCTION and (secret == LOCAL_SECRET or len(secret) < 32):
            raise ValueError(
                "CARELOOP_PORTAL_SECRET must be set to 32 or more random characters in production"
            )
        return cls(
            secret=secret,
            max_age_seconds=round(settings.max_age_days * 86_400),
            public_url=public_url,
        )

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=SALT)

    def portal_token(self, ticket_id: UUID) -> str:
        return self._serializer().dumps(ticket_id.hex)

    def portal_url(self, ticket_id: UUID) -> str:
        return f"{self.public_url}/t/{self.portal_token(ticket_id)}"

    def verify_portal_token(self, token: str) -> UUID:
        """The ticket the link opens; LinkExpired or LinkInvalid (both NotFound) otherwise."""
        try:
            value = self._serializer().loads(token, max_age=self.max_age_seconds)
        except SignatureExpired as exc:
            raise LinkExpired("this link has expired") from exc
        except BadSignature as exc:
            raise LinkInvalid("this link is not one careloop sent") from exc
        return UUID(hex=value)
