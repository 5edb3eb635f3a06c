"""The learner portal: one page per ticket, opened by the signed link in every message careloop
sends. The learner reads the whole conversation, adds a message, and answers "solved?".

The link is the learner's credential for that one ticket, so the pages never leak it: no
Referer leaves them, nothing is cached, and the forms carry a token derived from the link
(a page from another site cannot post without knowing the link) and are refused when the
browser says the post came from another site. Everything works without JavaScript.
"""

import hashlib
import hmac
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader

from services.desk import handlers, repo, self_service
from services.desk.domain import Answer, Conflict, Status
from services.desk.settings import DeskSettings
from shared.events import Attachment, Channel, Learner, TicketSubmitted, now
from shared.forms import FormRefused, read_form
from shared.problems import pages, problems
from shared.service import Context
from shared.text import problem

_templates = Environment(loader=PackageLoader("services.desk", "templates"), autoescape=True)

LANGUAGES = ("zh", "en")
BEIJING = ZoneInfo("Asia/Shanghai")
MAX_BODY = 20_000
MAX_TOKEN = 300  # a portal link's token is about 80 characters; longer is not one of ours
# What a page holding a credential in its URL may do: inline styles, forms to itself, no
# scripts, no frames, no Referer.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}

TEXT: dict[str, dict[str, Any]] = {
    "zh": {
        "title": "我的问题",
        "language": "语言",
        "number": "编号",
        "status": {
            "new": "已收到",
            "queued": "排队中",
            "assigned": "处理中",
            "resolved": "已解决，待确认",
            "closed": "已关闭",
            "reopened": "已重新打开",
            "pending_learner": "等待您的回复",
        },
        "explain": {
            "new": "我们已收到您的问题，正在为您安排客服。",
            "queued": "客服都在忙，您的问题正在排队，我们会尽快处理。",
            "assigned": "客服正在处理您的问题，回复会显示在这里，也会发送给您。",
            "resolved": "客服认为问题已经解决，请告诉我们是否真的解决了。",
            "closed": "这个问题已经关闭。",
            "reopened": "问题已重新打开，我们会继续跟进。",
            "pending_learner": "客服需要您补充一些信息，请在下面留言回复。",
        },
        "self_served_event": "您确认这篇文章解决了问题",
        "articles_heading": "这些文章也许能马上解答您的问题",
        "article_solved": "这篇解决了我的问题",
        "articles_note": "如果其中一篇已经解决了您的问题，点一下即可关闭这个问题，无需等待客服。",
        "ask_solved": "您的问题解决了吗？",
        "solved": "已解决",
        "not_solved": "还没有解决",
        "survey_ask": "请花一分钟告诉我们这次服务怎么样。",
        "survey": "填写满意度调查",
        "conversation": "沟通记录（北京时间）",
        "you": "您",
        "support": "客服",
        "file": "附件：",
        "events": {
            "assigned": "客服已接手您的问题",
            "queued": "您的问题正在排队等待客服",
            "resolved": "客服已将问题标记为已解决",
            "reopened": "问题已重新打开",
            "closed": "问题已关闭",
        },
        "add_heading": "补充信息",
        "closed_note": "这个问题已经关闭。在这里留言会为您新建一个问题，并关联到这个问题。",
        "resolved_note": "如果问题没有解决，也可以直接在这里留言，问题会重新打开。",
        "message": "留言",
        "message_hint": "请写下补充的情况或问题",
        "attach": "添加附件链接",
        "attachment_name": "附件名称",
        "attachment_url": "附件链接（https://…）",
        "send": "发送",
        "notices": {
            "sent": "您的留言已发送，客服会尽快回复。",
            "opened": "原来的问题已经关闭，我们为您的留言新建了这个问题，客服会尽快回复。",
            "closed": "感谢您的确认，问题已关闭。",
            "reopened": "我们会继续处理，问题已重新打开。",
            "answered": "这个问题已经确认过了。",
            "self_served": "很高兴文章帮到了您，问题已关闭。如有新的问题，随时在这里留言。",
        },
        "errors": {
            "empty": "请写下留言内容，或添加一个附件。",
            "too_long": f"留言最多 {MAX_BODY} 个字。",
            "text": "留言包含无法保存的字符，请删除后重试。",
            "attachment_pair": "添加附件时，请同时填写附件名称和链接。",
            "attachment_name": "附件名称最多 255 个字，且不能换行。",
            "attachment_url": "附件链接必须以 http:// 或 https:// 开头，且不能有空格。",
            "answer": "请选择“已解决”或“还没有解决”。",
            "closed": "这个问题已经关闭，留言没有发送。",
            "form": "表单无法读取，请重新打开链接后再试。",
            "stale_form": "页面已过期，请重新打开链接后再试。",
        },
    },
    "en": {
        "title": "My request",
        "language": "Language",
        "number": "Ref.",
        "status": {
            "new": "Received",
            "queued": "Waiting",
            "assigned": "In progress",
            "resolved": "Resolved — please confirm",
            "closed": "Closed",
            "reopened": "Reopened",
            "pending_learner": "Waiting for your answer",
        },
        "explain": {
            "new": "We have your request and are finding someone to help.",
            "queued": "Our agents are busy; your request is in the queue and will be taken soon.",
            "assigned": "An agent is working on it. Replies appear here and are sent to you.",
            "resolved": "Our agent believes this is solved. Please tell us whether it is.",
            "closed": "This request is closed.",
            "reopened": "Your request is open again; we will follow up.",
            "pending_learner": "Our agent needs something from you; please answer below.",
        },
        "self_served_event": "You said this article solved it",
        "articles_heading": "These articles may answer your question right away",
        "article_solved": "This solved it",
        "articles_note": "If one of them solved your problem, say so and we will close this request; no need to wait for an agent.",
        "ask_solved": "Is your problem solved?",
        "solved": "Yes, solved",
        "not_solved": "No, not solved",
        "survey_ask": "Please take a minute to tell us how we did.",
        "survey": "Take the survey",
        "conversation": "Conversation (Beijing time)",
        "you": "You",
        "support": "Support",
        "file": "File:",
        "events": {
            "assigned": "An agent took your request",
            "queued": "Your request is waiting for an agent",
            "resolved": "The agent marked this resolved",
            "reopened": "The request was reopened",
            "closed": "The request was closed",
        },
        "add_heading": "Add a message",
        "closed_note": "This request is closed. A message here opens a new request, linked to this one.",
        "resolved_note": "If it is not solved, you can also write here and we will reopen it.",
        "message": "Message",
        "message_hint": "Anything to add, or a new question",
        "attach": "Add a link to a file",
        "attachment_name": "File name",
        "attachment_url": "Link to the file (https://…)",
        "send": "Send",
        "notices": {
            "sent": "Your message was sent; we will reply soon.",
            "opened": "The earlier request was closed, so your message opened this new one; we will reply soon.",
            "closed": "Thank you for confirming; the request is closed.",
            "reopened": "We are on it again; your request is open.",
            "answered": "This request was already answered.",
            "self_served": "Glad the article helped; this request is closed. Write here any time if you need more.",
        },
        "errors": {
            "empty": "Please write a message or add a file.",
            "too_long": f"A message can be at most {MAX_BODY} characters.",
            "text": "The message contains characters that cannot be stored; please remove them.",
            "attachment_pair": "A file needs both a name and a link.",
            "attachment_name": "A file name is at most 255 characters, on one line.",
            "attachment_url": "The link must start with http:// or https:// and have no spaces.",
            "answer": "Please choose “Yes, solved” or “No, not solved”.",
            "closed": "This request is closed; your message was not sent.",
            "form": "The form could not be read; please open the link again.",
            "stale_form": "This page is out of date; please open the link again.",
        },
    },
}

CHANNELS = {
    "zh": {
        "web": "网页",
        "app": "App",
        "email": "邮件",
        "hotline": "电话",
        "chat": "在线客服",
        "wechat": "微信",
        "weibo": "微博",
        "suggestion_box": "意见箱",
        "sms": "短信",
    },
    "en": {
        "web": "web",
        "app": "app",
        "email": "e-mail",
        "hotline": "phone",
        "chat": "chat",
        "wechat": "WeChat",
        "weibo": "Weibo",
        "suggestion_box": "suggestion box",
        "sms": "SMS",
    },
}
# History entries a learner is told about; the rest (triage, escalation, scores) are internal.
EVENTS_SHOWN = frozenset(TEXT["en"]["events"])
NOTICES = frozenset(TEXT["en"]["notices"])


def choose_language(asked: str | None, ticket_language: str) -> str:
    """`?lang=` when it is one the portal speaks, else the ticket's own, else Chinese."""
    if asked in LANGUAGES:
        return asked
    return "en" if ticket_language.lower().startswith("en") else "zh"


def form_token(secret: str, link_token: str) -> str:
    """The forms' anti-forgery field: only someone who has the link (and so the page) has it."""
    return hmac.new(
        secret.encode(), f"portal-form.{link_token}".encode(), hashlib.sha256
    ).hexdigest()


def page_path(token: str) -> str:
    """The ticket page's path. Its forms and links use it whole, because a page shown again
    after a refused post sits at the form's own address, where a relative one would miss."""
    return f"/t/{token}"


def message_id_of(ticket_id: UUID, form: Mapping[str, str]) -> UUID:
    """The message's id, from the nonce its form was rendered with: the same form sent twice
    (a double tap, a reload of the post) is one message. A form without one is its own."""
    nonce = form.get("nonce", "")
    return uuid5(ticket_id, f"portal:{nonce}") if 16 <= len(nonce) <= 64 else uuid4()


def beijing_time(at: datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


def conversation_items(rows: Sequence[Mapping[str, Any]], lang: str) -> list[dict[str, Any]]:
    """The conversation as the learner reads it: their own messages, agents' replies, and the
    events worth telling them (the resolution's text with "resolved")."""
    text = TEXT[lang]
    items = []
    for row in rows:
        kind = row["kind"]
        item: dict[str, Any] = {
            "kind": kind,
            "iso": row["at"].isoformat(),
            "when": beijing_time(row["at"]),
        }
        if kind == "event":
            if row["body"] not in EVENTS_SHOWN:
                continue
            detail = row["detail"] or {}
            if row["body"] == "resolved" and detail.get("resolution_code") == "self_served":
                item["text"] = text["self_served_event"]  # the learner, not an agent
                item["body"] = (detail.get("article") or {}).get("title")
            else:
                item["text"] = text["events"][row["body"]]
                item["body"] = detail.get("resolution") if row["body"] == "resolved" else None
        else:
            mine = kind in ("description", "message")
            channel = row["channel"]
            item |= {
                "mine": mine,
                "who": text["you"] if mine else f"{text['support']} · {row['author']}",
                "channel": CHANNELS[lang].get(channel) if mine and channel else None,
                "body": row["body"],
                "attachments": list(row["attachments"] or ()),
            }
        items.append(item)
    return items


@dataclass(frozen=True)
class PostRefused(Exception):
    """A post the portal does not take: the page is shown again with a fresh form."""

    status: int
    key: str


@dataclass(frozen=True)
class Posted:
    """A post to a ticket's page: the ticket its link names, and the form or its refusal."""

    ticket_id: UUID
    form: Mapping[str, str]
    refused: PostRefused | None


@dataclass(frozen=True)
class MessageProblem(Exception):
    """What is wrong with a posted message: a key of TEXT[lang]["errors"]."""

    key: str


def read_message(form: Mapping[str, str]) -> tuple[str, tuple[Attachment, ...]]:
    """The message a learner posted: its text and at most one attachment's metadata."""
    # Browsers send a textarea's line breaks as CRLF (HTML's form encoding); stored as LF,
    # as every other channel's text is.
    body = form.get("body", "").replace("\r\n", "\n").strip()
    name = form.get("attachment_name", "").strip()
    url = form.get("attachment_url", "").strip()
    if len(body) > MAX_BODY:
        raise MessageProblem("too_long")
    if problem(body, multiline=True):
        raise MessageProblem("text")
    if bool(name) != bool(url):
        raise MessageProblem("attachment_pair")
    if not body and not name:
        raise MessageProblem("empty")
    if not name:
        return body, ()
    if len(name) > 255 or problem(name, multiline=False):
        raise MessageProblem("attachment_name")
    if (
        len(url) > 2000
        or not url.lower().startswith(("http://", "https://"))
        or any(c.isspace() for c in url)
        or problem(url, multiline=False)
    ):
        raise MessageProblem("attachment_url")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return body, (Attachment(name=name, content_type=content_type, size=0, url=url),)


def routes(ctx: Context[DeskSettings]) -> APIRouter:
    settings = ctx.settings
    secret = settings.link_secret.get_secret_value()
    links = handlers.links_for(settings)
    router = APIRouter(tags=["portal"], max_body_size=settings.http_max_body_bytes)

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = _templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def gone(lang: str | None) -> HTMLResponse:
        return render("portal_gone.html.j2", status=404, lang=lang if lang in LANGUAGES else None)

    def ticket_of(token: str) -> UUID | None:
        return links.verify_portal_token(token) if len(token) <= MAX_TOKEN else None

    async def show(
        conn: asyncpg.Connection,
        ticket: asyncpg.Record,
        *,
        token: str,
        lang: str,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        draft: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        rows = await repo.conversation(conn, ticket["ticket_id"])
        return render(
            "portal.html.j2",
            status=status,
            lang=lang,
            t=TEXT[lang],
            page=page_path(token),
            csrf=form_token(secret, token),
            nonce=uuid4().hex,
            ticket=ticket,
            items=conversation_items(rows, lang),
            survey_url=dict(ticket).get("survey_url"),
            articles=self_service.offered(ticket),
            notice=notice if notice in NOTICES else None,
            error=TEXT[lang]["errors"][error] if error else None,
            draft=draft or {},
            max_body=MAX_BODY,
        )

    def back_to(token: str, lang: str, notice: str) -> RedirectResponse:
        """Post/Redirect/Get: reloading the page does not post again. The notice shows at the
        top of the page, next to the status it changed."""
        query = urlencode({"lang": lang, "notice": notice})
        return RedirectResponse(f"{page_path(token)}?{query}", status_code=303, headers=HEADERS)

    async def read_post(request: Request, token: str) -> Mapping[str, str]:
        """The form's fields, once the post is shown to come from the portal's own page."""
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise PostRefused(403, "stale_form")
        try:
            form = await read_form(request)
        except FormRefused as exc:
            raise PostRefused(exc.status, "form") from exc
        if not hmac.compare_digest(form.get("csrf", ""), form_token(secret, token)):
            raise PostRefused(403, "stale_form")
        return form

    async def posted(request: Request, token: str) -> Posted | Response:
        """A post's ticket and form (its refusal too: the page is shown again with it), read
        before a connection is taken; or the page for a link that names no ticket."""
        ticket_id = ticket_of(token)
        if ticket_id is None:
            return gone(None)
        try:
            return Posted(ticket_id, await read_post(request, token), None)
        except PostRefused as exc:
            return Posted(ticket_id, {}, exc)

    async def opened(
        conn: asyncpg.Connection, token: str, post: Posted
    ) -> tuple[asyncpg.Record, str] | Response:
        """The post's ticket, locked, and the page's language; or the page to answer with (no
        such ticket, or the form refused)."""
        ticket = await repo.lock_ticket(conn, post.ticket_id)
        if ticket is None:
            return gone(None)
        lang = choose_language(post.form.get("lang"), ticket["language"])
        if post.refused:
            refused = post.refused
            return await show(
                conn, ticket, token=token, lang=lang, status=refused.status, error=refused.key
            )
        return ticket, lang

    @router.get(
        "/t/{token}",
        response_class=HTMLResponse,
        summary="The learner's page for one ticket (the link in every message)",
        responses={**pages(404), **problems(503)},
    )
    async def portal_page(
        token: str, lang: str | None = None, notice: str | None = None
    ) -> HTMLResponse:
        ticket_id = ticket_of(token)
        if ticket_id is None:
            return gone(lang)
        async with ctx.pool.acquire() as conn:
            ticket = await repo.get_ticket(conn, ticket_id)
            if ticket is None:
                return gone(lang)
            language = choose_language(lang, ticket["language"])
            return await show(conn, ticket, token=token, lang=language, notice=notice)

    @router.get("/t/{token}/messages", include_in_schema=False)
    @router.get("/t/{token}/answer", include_in_schema=False)
    async def to_the_page(token: str) -> RedirectResponse:
        """A form's address opened (a bookmark, a reload after a refused post): the page."""
        return RedirectResponse(page_path(token), status_code=303, headers=HEADERS)

    @router.post(
        "/t/{token}/messages",
        response_class=HTMLResponse,
        summary="The learner adds a message (and a file's name and link) to the ticket",
        responses={**pages(400, 403, 404, 415, 422), **problems(413, 503)},
    )
    async def portal_message(token: str, request: Request) -> Response:
        post = await posted(request, token)
        if isinstance(post, Response):
            return post
        form, ticket_id = post.form, post.ticket_id
        async with ctx.pool.acquire() as conn, conn.transaction():
            found = await opened(conn, token, post)
            if isinstance(found, Response):
                return found
            ticket, lang = found
            try:
                body, attachments = read_message(form)
            except MessageProblem as exc:
                return await show(
                    conn, ticket, token=token, lang=lang, status=422, error=exc.key, draft=form
                )
            if ticket["status"] == Status.CLOSED:  # a new request, linked to this one
                linked = await handlers.open_linked_ticket(
                    conn,
                    ticket,
                    TicketSubmitted(
                        ticket_id=ticket_id,
                        channel=Channel.WEB,
                        learner=msgspec.convert(ticket["learner"], Learner),
                        subject=ticket["subject"],
                        description=body,
                        course_id=ticket["course_id"],
                        language=ticket["language"],
                        attachments=attachments,
                        submitted_at=now(),
                        message_id=message_id_of(ticket_id, form),
                    ),
                    links,
                )
                return back_to(links.portal_token(linked), lang, "opened")
            await handlers.add_learner_message(
                conn,
                ticket,
                message_id=message_id_of(ticket_id, form),
                channel=Channel.WEB,
                learner=msgspec.convert(ticket["learner"], Learner),
                body=body,
                attachments=attachments,
                received_at=now(),
                links=links,
            )
        return back_to(token, lang, "sent")

    @router.post(
        "/t/{token}/answer",
        response_class=HTMLResponse,
        summary="The learner's answer on a resolved ticket: solved or not",
        responses={**pages(400, 403, 404, 409, 415, 422), **problems(413, 503)},
    )
    async def portal_answer(token: str, request: Request) -> Response:
        post = await posted(request, token)
        if isinstance(post, Response):
            return post
        form, ticket_id = post.form, post.ticket_id
        async with ctx.pool.acquire() as conn, conn.transaction():
            found = await opened(conn, token, post)
            if isinstance(found, Response):
                return found
            ticket, lang = found
            try:
                answer = Answer(form.get("answer", ""))
            except ValueError:
                return await show(conn, ticket, token=token, lang=lang, status=422, error="answer")
            try:
                outcome = await handlers.confirm_ticket(
                    conn,
                    ticket_id=ticket_id,
                    answer=answer,
                    callback_sample=ctx.settings.callback_sample,
                )
            except Conflict:
                return await show(
                    conn, ticket, token=token, lang=lang, status=409, notice="answered"
                )
        return back_to(token, lang, outcome.value)

    @router.post(
        "/t/{token}/solved",
        response_class=HTMLResponse,
        summary="The learner says an offered article solved it: closed as self-served",
        responses={**pages(400, 403, 404, 409, 415), **problems(413, 503)},
    )
    async def portal_solved(token: str, request: Request) -> Response:
        post = await posted(request, token)
        if isinstance(post, Response):
            return post
        form = post.form
        async with ctx.pool.acquire() as conn, conn.transaction():
            found = await opened(conn, token, post)
            if isinstance(found, Response):
                return found
            ticket, lang = found
            try:
                await self_service.solved_by_article(
                    conn, ticket, article_id=form.get("article", ""), links=links
                )
            except Conflict:
                return await show(
                    conn, ticket, token=token, lang=lang, status=409, notice="answered"
                )
        return back_to(token, lang, "self_served")

    return router
