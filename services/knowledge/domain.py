"""knowledge's decisions: what an article is, how text becomes search words, which edits and
status changes are allowed, and how suggestions are ranked."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from shared.errors import PermanentError
from shared.events import Category, TicketRetriaged, TicketRouted
from shared.retention import masked

# How text becomes search words is shared with desk's ticket search.
from shared.searchwords import indexed as indexed
from shared.searchwords import query as query
from shared.searchwords import words as words
from shared.text import Line, Text, detect_language

Language = Literal["zh", "en"]
TITLE_LENGTH = 200
BODY_LENGTH = 20_000
Tag = Annotated[Line, Field(min_length=1, max_length=40)]


class Status(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class ArticleIn(BaseModel):
    """An article as an editor writes it; the language is detected from the text when absent."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    title: Line = Field(min_length=1, max_length=TITLE_LENGTH)
    body: Text = Field(min_length=1, max_length=BODY_LENGTH)
    category: Category = Field(description="One of triage's categories.")
    tags: tuple[Tag, ...] = Field((), max_length=20)
    language: Language | None = Field(None, description="zh or en; detected when absent.")

    @property
    def lang(self) -> Language:
        return self.language or ("zh" if detect_language(self.title, self.body) == "zh" else "en")


class ArticleEdit(ArticleIn):
    """A new version of an article, made from the version the editor read (`version`)."""

    version: StrictInt = Field(ge=1, description="The version this edit starts from.")


class VersionRef(BaseModel):
    """The version a status change was decided on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: StrictInt = Field(ge=1, description="The article's current version, as read.")


class FromReply(BaseModel):
    """An agent's reply to a ticket, to become a draft article an editor can polish."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    reply: Text = Field(min_length=1, max_length=BODY_LENGTH, description="The reply's text.")
    category: Category = Field(description="The ticket's category.")
    language: Language | None = Field(None, description="The ticket's language; else detected.")
    ticket_id: UUID | None = Field(None, description="The ticket the reply answered.")
    title: Line | None = Field(
        None, min_length=1, max_length=TITLE_LENGTH, description="Else the reply's first line."
    )

    def article(self) -> ArticleIn:
        """The draft: an article is for every learner, so no e-mail address or phone number
        of the reply's one learner goes into it."""
        reply = masked(self.reply)
        return ArticleIn(
            title=masked(self.title) if self.title else first_line(reply),
            body=reply,
            category=self.category,
            language=self.language,
        )


def first_line(text: str) -> str:
    """A title from a reply: its first non-empty line, cut at a word (or character) boundary."""
    line = next((s.strip() for s in text.splitlines() if s.strip()), text.strip())
    if len(line) <= 80:
        return line
    cut = line[:80]
    return (cut.rsplit(" ", 1)[0] if " " in cut[40:] else cut) + "…"


# ---- status and versions -------------------------------------------------------------------


class NotFound(PermanentError):
    """No such article, or not one the caller may see."""


class Conflict(PermanentError):
    """The article is not in a state where this change makes sense (or was changed since)."""


class Stale(Conflict):
    """Someone saved a newer version since the caller read it."""


def check_version(current: int, read: int) -> None:
    """Optimistic lock: an edit starts from the version that is current, or is refused."""
    if read != current:
        raise Stale(
            f"version {read} is not the current one ({current}): someone saved a newer version; "
            "read it again and redo the change"
        )


def check_editable(status: Status) -> None:
    if status is Status.ARCHIVED:
        raise Conflict("the article is archived: publish it again before editing it")


def check_publishable(status: Status) -> None:
    if status is Status.PUBLISHED:
        raise Conflict("the article is already published (an edit publishes its new version)")


def check_archivable(status: Status) -> None:
    if status is Status.ARCHIVED:
        raise Conflict("the article is already archived")


# ---- ranking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A published article that matched a ticket's text, as the search found it."""

    article_id: UUID
    title: str
    category: str
    text_rank: float
    helpful: int
    not_helpful: int


@dataclass(frozen=True)
class Ranked:
    article_id: UUID
    title: str
    score: float


CATEGORY_BOOST = 1.5


def helpfulness(helpful: int, not_helpful: int) -> float:
    """Learners' votes as a factor around 1: twice the smoothed share of helpful votes, so an
    article nobody voted on is neutral and many "not helpful" votes sink it towards 0."""
    return 2 * (helpful + 1) / (helpful + not_helpful + 2)


def rank(
    candidates: Iterable[Candidate],
    *,
    category: str | None,
    limit: int,
    min_score: float,
) -> list[Ranked]:
    """The best `limit` candidates: text match, times a boost in the ticket's category, times
    helpfulness; those under `min_score` are not worth a learner's time."""
    scored = [
        Ranked(
            article_id=c.article_id,
            title=c.title,
            score=round(
                c.text_rank
                * (CATEGORY_BOOST if category is not None and c.category == category else 1.0)
                * helpfulness(c.helpful, c.not_helpful),
                4,
            ),
        )
        for c in candidates
    ]
    kept = [r for r in scored if r.score >= min_score]
    return sorted(kept, key=lambda r: (-r.score, str(r.article_id)))[:limit]


def ticket_text(subject: str, description: str) -> str:
    return f"{subject}\n{description}"


def ticket_language(language: str) -> Language:
    """The articles' language for a ticket's: Chinese for Chinese, English for anything else."""
    return "zh" if language == "zh" else "en"


def decided_category(event: TicketRouted | TicketRetriaged) -> tuple[Category, datetime] | None:
    """The category a ticket's suggestions are ranked in from now on, and when it was decided:
    triage's (ticket.routed) or a person's correction (ticket.retriaged); None for a
    retriage that kept the category (only the priority changed: the suggestions stand)."""
    if isinstance(event, TicketRouted):
        return event.category, event.routed_at
    if event.category == event.previous_category:
        return None
    return event.category, event.retriaged_at
