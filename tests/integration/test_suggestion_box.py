"""The suggestion box on the real broker and Redis: the page, its CSRF-safe form, the API.

desk's receipt endpoint is served by a small HTTP server that answers as desk does
(`GET /v1/receipts/{id}`: 404 until the ticket exists, then its number), so the page's
wait for the number is tested over real HTTP without a database."""

import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.intake.channels.suggestion import CSRF_COOKIE
from shared.events import Channel
from tests.integration.test_learner_api import channels_app, published
from tests.support import RunningStack, port

DESK_PORT = port(22681)
NUMBERED: dict[str, str] = {}  # ticket id -> number: what the receipts server knows


class Receipts(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ticket_id = self.path.rsplit("/", 1)[-1]
        number = NUMBERED.get(ticket_id)
        body = json.dumps(
            {"number": number, "status": "new"} if number else {"detail": "no such ticket yet"}
        ).encode()
        self.send_response(200 if number else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def desk() -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", DESK_PORT), Receipts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def client(stack: RunningStack, desk: None) -> Iterator[TestClient]:
    settings = {"desk_url": f"http://127.0.0.1:{DESK_PORT}", "receipt_wait_seconds": 0.5}
    with TestClient(channels_app(stack, suggestions=settings), base_url="http://testserver") as c:
        yield c


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden {name} field"
    return found.group(1)


def _form(client: TestClient, lang: str = "zh") -> dict[str, str]:
    page = client.get(f"/suggestions?lang={lang}").text
    return {"csrf": _hidden(page, "csrf"), "form_id": _hidden(page, "form_id"), "lang": lang}


def test_the_page_speaks_the_browsers_language_and_fits_a_phone(client: TestClient) -> None:
    zh = client.get("/suggestions", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    en = client.get("/suggestions", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})

    assert zh.status_code == en.status_code == 200
    assert "意见箱" in zh.text and 'lang="zh-CN"' in zh.text
    assert "Suggestion box" in en.text and 'lang="en"' in en.text
    assert 'name="viewport" content="width=device-width' in zh.text
    cookie = zh.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


async def test_an_anonymous_suggestion_is_acknowledged_on_the_page_with_its_reference(
    stack: RunningStack, client: TestClient
) -> None:
    form = {**_form(client), "text": "希望周末也能开放自习室"}

    answer = client.post("/suggestions?lang=zh", data=form)

    assert answer.status_code == 200, answer.text
    assert "感谢您的建议" in answer.text
    assert "匿名提交" in answer.text  # no confirmation will follow
    reference = re.search(r'class="reference[^"]*">([^<]+)<', answer.text)
    assert reference is not None
    ticket = await published(stack, ticket_id=uuid.UUID(reference.group(1)))
    assert ticket.channel is Channel.SUGGESTION_BOX
    assert (ticket.learner.name, ticket.learner.email, ticket.learner.phone) == ("匿名", None, None)


def test_the_page_shows_the_number_once_desk_has_it_and_a_resent_form_is_one_ticket(
    client: TestClient,
) -> None:
    form = {
        **_form(client, "en"),
        "text": "More evening classes, please",
        "email": "li@example.com",
    }
    first = client.post("/suggestions?lang=en", data=form)
    ticket_id = re.search(r'class="reference[^"]*">([^<]+)<', first.text).group(1)  # type: ignore[union-attr]
    NUMBERED[ticket_id] = "CL-004711"

    again = client.post("/suggestions?lang=en", data=form)

    assert again.status_code == 200
    assert "CL-004711" in again.text
    assert "We will send a confirmation" in again.text


def test_a_form_without_its_cookie_is_refused_and_offered_again(client: TestClient) -> None:
    form = {**_form(client), "text": "跨站提交的内容"}
    client.cookies.clear()

    answer = client.post("/suggestions?lang=zh", data=form)

    assert answer.status_code == 403
    assert "表单已过期" in answer.text
    assert "跨站提交的内容" in answer.text  # what they wrote is kept
    assert CSRF_COOKIE in answer.headers["set-cookie"]


def test_a_form_with_another_token_is_refused(client: TestClient) -> None:
    form = {**_form(client), "text": "x", "csrf": "A" * 32}
    assert client.post("/suggestions", data=form).status_code == 403


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": "  "}, "请填写您的意见或建议"),
        ({"text": "ok", "email": "not-an-address"}, "电子邮箱格式不正确"),
        ({"text": "ok", "phone": "call me"}, "手机号码格式不正确"),
        ({"text": "bad\x01char"}, "不能含控制字符"),
    ],
)
def test_a_form_that_cannot_be_stored_is_shown_again_with_the_problem(
    client: TestClient, fields: dict[str, str], message: str
) -> None:
    answer = client.post("/suggestions?lang=zh", data={**_form(client), **fields})
    assert answer.status_code == 422
    assert message in answer.text


def test_a_form_that_is_not_urlencoded_is_refused_with_a_page(client: TestClient) -> None:
    answer = client.post("/suggestions", json={"text": "hi"})
    assert answer.status_code == 415
    assert "<form" in answer.text


def test_the_per_address_limit_answers_429_with_retry_after(stack: RunningStack) -> None:
    window = 100 + uuid.uuid4().int % 1000
    limits = {
        "rate_per_address": 1,
        "rate_address_window_seconds": window,
        "receipt_wait_seconds": 0,
    }
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    with TestClient(channels_app(stack, suggestions=limits), client=(address, 40000)) as c:
        answers = [
            c.post("/suggestions?lang=en", data={**_form(c, "en"), "text": f"idea {i}"})
            for i in range(2)
        ]
    assert [a.status_code for a in answers] == [200, 429]
    assert "Too many suggestions" in answers[1].text
    assert 1 <= int(answers[1].headers["Retry-After"]) <= window


async def test_the_api_takes_a_suggestion_with_or_without_a_contact(
    stack: RunningStack, client: TestClient
) -> None:
    anonymous = client.post("/v1/suggestions", json={"text": f"Quieter library {uuid.uuid4()}"})
    named = client.post(
        "/v1/suggestions",
        json={"text": "更多的练习题", "name": "王芳", "phone": "13800138000"},
        headers={"Idempotency-Key": f"k-{uuid.uuid4()}"},
    )

    assert anonymous.status_code == named.status_code == 202
    first = await published(stack, ticket_id=uuid.UUID(anonymous.json()["ticket_id"]))
    second = await published(stack, ticket_id=uuid.UUID(named.json()["ticket_id"]))
    assert first.learner.name == "anonymous"
    assert (second.learner.name, second.learner.phone) == ("王芳", "+8613800138000")


def test_the_api_refuses_an_empty_or_unknown_field(client: TestClient) -> None:
    empty = client.post("/v1/suggestions", json={"text": ""})
    unknown = client.post("/v1/suggestions", json={"text": "x", "rating": 5})
    assert empty.status_code == unknown.status_code == 422
