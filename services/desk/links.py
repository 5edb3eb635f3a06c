"""The learner's link to a ticket's page: signed (itsdangerous, HMAC-SHA1 over the ticket id
and the time it was made), so it needs no table, and dated, so it expires
(`CARELOOP_DESK_LINK_MAX_AGE_DAYS`). Made for every new ticket: a TimestampSigner over the
id's hex costs a few microseconds, where a serializer's JSON would cost ten times that."""

from uuid import UUID

from itsdangerous import BadSignature, TimestampSigner

SALT = "careloop.portal"


class Links:
    def __init__(self, *, secret: str, public_url: str, max_age_days: float) -> None:
        self._signer = TimestampSigner(secret, salt=SALT)
        self._public_url = public_url
        self._max_age = int(max_age_days * 86400)

    def portal_token(self, ticket_id: UUID) -> str:
        return self._signer.sign(ticket_id.hex).decode("ascii")

    def portal_url(self, ticket_id: UUID) -> str:
        return f"{self._public_url}/t/{self.portal_token(ticket_id)}"

    def verify_portal_token(self, token: str) -> UUID | None:
        """The ticket a link names, or None when it is forged, damaged or expired."""
        try:
            return UUID(hex=self._signer.unsign(token, max_age=self._max_age).decode("ascii"))
        except (BadSignature, ValueError, TypeError, UnicodeError):
            return None
