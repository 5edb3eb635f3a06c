"""The learners' article page escapes what editors wrote; knowledge's events travel intact."""

import uuid
from datetime import UTC, datetime

from services.knowledge.handlers import keyed_by_article
from services.knowledge.pages import _templates, paragraphs
from shared.events import (
    ArticlePublished,
    ArticlesSuggested,
    Category,
    SuggestedArticle,
    decode,
    new_event,
)

ARTICLE_ID = uuid.UUID("0192f0c4-7a3e-7000-8000-000000000001")


def render(**context: object) -> str:
    defaults: dict[str, object] = {
        "lang": "zh",
        "here": f"/kb/{ARTICLE_ID}",
        "article": None,
        "paragraphs": [],
        "csrf": "t" * 32,
        "voted": None,
        "error": None,
        "gone": False,
    }
    return _templates.get_template("article.html.j2").render(**(defaults | context))


def article(title: str, body: str) -> dict[str, object]:
    return {
        "article_id": ARTICLE_ID,
        "language": "zh",
        "title": title,
        "body": body,
        "tags": ["<b>退款</b>"],
        "updated_at": datetime(2026, 11, 30, tzinfo=UTC),
    }


def test_html_in_an_articles_title_body_and_tags_is_shown_as_text() -> None:
    body = '第一段<script>alert("x")</script>\n第二行\n\n<img src=x onerror=alert(1)>'
    html = render(article=article("<i>退款</i>", body), paragraphs=paragraphs(body))
    assert "<script>" not in html and "<img" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;<br>第二行" in html
    assert "&lt;b&gt;退款&lt;/b&gt;" in html


def test_the_body_keeps_its_paragraphs_and_line_breaks() -> None:
    assert paragraphs("a\r\nb\n\n\n\nc\n") == [["a", "b"], ["c"]]


def test_the_form_posts_the_csrf_token_to_the_articles_feedback() -> None:
    html = render(article=article("标题", "正文"), paragraphs=[["正文"]])
    assert f'action="/kb/{ARTICLE_ID}/feedback?lang=zh"' in html
    assert 'name="csrf" value="tttttttttttttttttttttttttttttttt"' in html


def test_an_archived_article_says_it_was_withdrawn_in_english() -> None:
    html = render(lang="en", gone=True)
    assert "This article was withdrawn" in html and 'name="helpful"' not in html


def test_an_article_event_is_keyed_by_its_article_and_decodes_as_sent() -> None:
    published = ArticlePublished(
        article_id=ARTICLE_ID,
        version=2,
        language="en",
        category=Category.PAYMENT_REFUND,
        tags=("refund",),
        title="How long does a refund take?",
        url=f"http://127.0.0.1:18087/kb/{ARTICLE_ID}?lang=en",
        by="sue",
        published_at=datetime(2026, 11, 30, tzinfo=UTC),
    )
    event = keyed_by_article(published, ARTICLE_ID)
    assert event.key == str(ARTICLE_ID) and event.topic == "careloop.knowledge.v1"
    assert decode(event.to_json()) == event
    assert event.data.ticket_id is None


def test_suggestions_for_a_ticket_are_keyed_by_the_ticket() -> None:
    ticket_id = uuid.uuid4()
    suggested = new_event(
        ArticlesSuggested(
            ticket_id=ticket_id,
            language="zh",
            articles=(
                SuggestedArticle(article_id=ARTICLE_ID, title="退款到账时间", url="u", score=0.12),
            ),
            suggested_at=datetime(2026, 11, 30, tzinfo=UTC),
        ),
        producer="knowledge",
    )
    assert suggested.key == str(ticket_id)
    assert decode(suggested.to_json()) == suggested
