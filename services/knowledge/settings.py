"""knowledge's settings on top of the shared ones."""

from typing import Annotated

from pydantic import Field

from shared.settings import CommonSettings, own


class KnowledgeSettings(CommonSettings):
    http_port: int = own("knowledge", "http_port", 18087, "HTTP port.")
    public_url_override: str | None = own(
        "knowledge",
        "public_url",
        None,
        "Where learners reach the article pages (behind a proxy: https://help.example.com); "
        "unset: CARELOOP_PUBLIC_BASE_URL and the HTTP port.",
    )
    suggestions: Annotated[int, Field(ge=1, le=10)] = own(
        "knowledge", "suggestions", 3, "Most articles offered for a new ticket."
    )
    min_score: Annotated[float, Field(ge=0)] = own(
        "knowledge",
        "min_score",
        0.025,
        "Articles scoring below this (Postgres ts_rank of the text match, normalised by length, "
        "x 1.5 in the ticket's category x helpfulness, 0 to 2) are not offered: a match on one "
        "common word is not an answer. Good matches of the demo articles score 0.035 to 0.12.",
    )
    demo_articles: bool = own(
        "knowledge",
        "demo_articles",
        False,
        "Add the demo articles that are missing as the service starts (the local run sets it).",
    )
    secure_cookie: bool = own(
        "knowledge",
        "secure_cookie",
        False,
        "Mark the article page's CSRF cookie Secure (on when the page is served over HTTPS).",
    )

    @property
    def public_url(self) -> str:
        return self.public_url_override or f"{self.public_base_url}:{self.http_port}"

    def article_url(self, article_id: object, language: str) -> str:
        return f"{self.public_url}/kb/{article_id}?lang={language}"
