"""knowledge's pure decisions: search words, ranking, versions and status, what an article is."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.knowledge.domain import (
    ArticleEdit,
    ArticleIn,
    Candidate,
    Conflict,
    FromReply,
    Stale,
    Status,
    check_archivable,
    check_editable,
    check_publishable,
    check_version,
    decided_category,
    first_line,
    helpfulness,
    query,
    rank,
    ticket_language,
    words,
)
from shared.events import Category, Channel, Priority, TicketRetriaged, TicketRouted


def test_chinese_is_cut_into_words_and_filler_words_are_dropped() -> None:
    assert words("请问退款多久到账？") == ["退款", "多久", "到", "账"]


def test_traditional_characters_are_searched_as_simplified() -> None:
    assert words("影片無法播放") == ["影片", "无法", "播放"]


def test_english_words_are_lower_cased_once_each_without_punctuation() -> None:
    assert words("Refund? REFUND, refund-time!") == ["refund", "time"]


def test_a_query_matches_any_of_its_words() -> None:
    assert query("退款多久到账") == "退款 | 多久 | 到 | 账"


def test_tsquery_operators_in_the_text_never_reach_the_query() -> None:
    assert query("video & !audio | (x:*) 'y'") == "video | audio | x | y"


def test_a_text_of_filler_and_punctuation_has_no_query() -> None:
    assert query("请问，怎么办？！") is None


def candidate(
    title: str, *, category: str, text_rank: float, votes: tuple[int, int] = (0, 0)
) -> Candidate:
    return Candidate(
        article_id=uuid.uuid5(uuid.NAMESPACE_URL, title),
        title=title,
        category=category,
        text_rank=text_rank,
        helpful=votes[0],
        not_helpful=votes[1],
    )


def test_an_article_nobody_voted_on_is_neutral() -> None:
    assert helpfulness(0, 0) == 1
    assert helpfulness(9, 1) > 1 > helpfulness(1, 9)


def test_the_tickets_category_lifts_a_slightly_weaker_text_match() -> None:
    refund = candidate("Refund timing", category="payment_refund", text_rank=0.08)
    video = candidate("Video playback", category="technical", text_rank=0.1)
    ranked = rank([video, refund], category="payment_refund", limit=3, min_score=0)
    assert [r.title for r in ranked] == ["Refund timing", "Video playback"]
    assert ranked[0].score == pytest.approx(0.12)


def test_learners_not_helpful_votes_sink_an_article_below_a_helpful_one() -> None:
    disliked = candidate("Old answer", category="technical", text_rank=0.1, votes=(1, 20))
    liked = candidate("Good answer", category="technical", text_rank=0.06, votes=(12, 1))
    ranked = rank([disliked, liked], category=None, limit=3, min_score=0)
    assert [r.title for r in ranked] == ["Good answer", "Old answer"]


def test_weak_matches_are_not_offered_and_the_limit_holds() -> None:
    found = [candidate(f"a{i}", category="other", text_rank=0.1 - i / 100) for i in range(8)]
    ranked = rank(found, category=None, limit=3, min_score=0.095)
    assert [r.title for r in ranked] == ["a0"]
    assert len(rank(found, category=None, limit=3, min_score=0)) == 3


def test_an_edit_from_an_older_version_is_stale() -> None:
    check_version(3, 3)
    with pytest.raises(Stale, match="version 2 is not the current one \\(3\\)"):
        check_version(3, 2)


def test_status_changes_that_make_no_sense_conflict() -> None:
    with pytest.raises(Conflict, match="archived"):
        check_editable(Status.ARCHIVED)
    with pytest.raises(Conflict, match="already published"):
        check_publishable(Status.PUBLISHED)
    with pytest.raises(Conflict, match="already archived"):
        check_archivable(Status.ARCHIVED)
    check_publishable(Status.ARCHIVED)  # publishing again restores it


def fields_of(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {str(e["loc"][0]) for e in exc.value.errors()}


def test_an_unknown_category_an_empty_title_and_a_too_long_body_are_each_named() -> None:
    with pytest.raises(ValidationError) as exc:
        ArticleIn.model_validate(
            {"title": "  ", "body": "x" * 20_001, "category": "refunds", "tags": ["退款"]}
        )
    assert fields_of(exc) == {"title", "body", "category"}


def test_a_title_on_two_lines_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        ArticleIn.model_validate(
            {"title": "a\nb", "body": "b", "category": "other", "author": "me"}
        )
    assert fields_of(exc) == {"title", "author"}


def test_an_edit_names_the_version_it_starts_from_as_a_number() -> None:
    with pytest.raises(ValidationError) as exc:
        ArticleEdit.model_validate({"title": "t", "body": "b", "category": "other", "version": "2"})
    assert fields_of(exc) == {"version"}


def test_an_articles_language_is_detected_when_not_given() -> None:
    zh = ArticleIn(title="退款说明", body="审核通过后原路退回。", category="payment_refund")
    en = ArticleIn(title="Refunds", body="Approved refunds go back.", category="payment_refund")
    assert (zh.lang, en.lang) == ("zh", "en")


def test_a_draft_from_a_reply_takes_its_first_line_as_title() -> None:
    reply = FromReply(
        reply="\n您好，退款已经审核通过。\n\n一般 1–3 个工作日到账。",
        category="payment_refund",
        language="zh",
    )
    article = reply.article()
    assert (article.title, article.lang, article.category) == (
        "您好，退款已经审核通过。",
        "zh",
        "payment_refund",
    )


def test_a_draft_from_a_reply_carries_no_e_mail_address_or_phone_number() -> None:
    reply = FromReply(
        reply="Hi, lei@example.com is on file\nCall us back on +86 138 0013 8000 any time.",
        category="account_security",
    )
    article = reply.article()
    assert (article.title, article.body) == (
        "Hi, [email] is on file",
        "Hi, [email] is on file\nCall us back on [phone] any time.",
    )
    titled = FromReply(reply="Reset it here.", title="For 13800138000", category="account_security")
    assert titled.article().title == "For [phone]"


def test_a_long_first_line_is_cut_at_a_word() -> None:
    line = "Hello, " + "your refund was approved and " * 5
    title = first_line(line)
    assert title.endswith("…") and len(title) <= 81
    assert line.startswith(title[:-1])
    assert not title[:-1].endswith(" ")


AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_triage_and_a_corrected_category_rank_the_suggestions_but_a_new_priority_does_not() -> None:
    routed = TicketRouted(
        ticket_id=uuid.uuid4(),
        channel=Channel.WEB,
        category=Category.TECHNICAL,
        priority=Priority.MEDIUM,
        team="tech_support",
        language="en",
        first_response_due_at=AT + timedelta(hours=4),
        resolution_due_at=AT + timedelta(hours=48),
        routed_at=AT,
    )

    def retriaged(category: Category) -> TicketRetriaged:
        return TicketRetriaged(
            ticket_id=routed.ticket_id,
            number="CL-000001",
            category=category,
            priority=Priority.HIGH,
            previous_category=Category.TECHNICAL,
            previous_priority=Priority.MEDIUM,
            by="sue",
            reason="charged twice",
            retriaged_at=AT + timedelta(hours=1),
        )

    assert decided_category(routed) == (Category.TECHNICAL, AT)
    assert decided_category(retriaged(Category.PAYMENT_REFUND)) == (
        Category.PAYMENT_REFUND,
        AT + timedelta(hours=1),
    )
    assert decided_category(retriaged(Category.TECHNICAL)) is None


@pytest.mark.parametrize(("ticket", "articles"), [("zh", "zh"), ("en", "en"), ("ja", "en")])
def test_a_ticket_is_offered_chinese_articles_if_chinese_else_english(
    ticket: str, articles: str
) -> None:
    assert ticket_language(ticket) == articles
