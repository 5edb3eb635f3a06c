"""intake's HTTP edge refuses bad input before anything is published (no broker needed)."""

from fastapi.testclient import TestClient

from services.intake.app import create_app
from services.intake.settings import IntakeSettings

# Without `with`, TestClient does not run the lifespan: nothing connects anywhere, so any
# request that got past validation would fail loudly instead of passing by accident.
client = TestClient(create_app(IntakeSettings()), raise_server_exceptions=False)
VALID = {"name": "Li Lei", "email": "lilei@example.com", "subject": "Help", "description": "Video"}


def test_an_oversize_body_is_refused_with_413() -> None:
    body = {**VALID, "description": "x" * 300_000}
    assert client.post("/v1/tickets", json=body).status_code == 413


def test_a_bad_submission_gets_422_naming_each_field_and_its_problem() -> None:
    r = client.post("/v1/tickets", json={**VALID, "email": "nope", "phone": "call me"})
    assert r.status_code == 422
    problems = {e["loc"][-1]: e["msg"] for e in r.json()["detail"]}
    assert set(problems) == {"email", "phone"}
    assert "@-sign" in problems["email"]


def test_an_unknown_field_is_refused_rather_than_dropped() -> None:
    r = client.post("/v1/tickets", json={**VALID, "priority": "urgent"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "priority"


def test_a_missing_contact_is_refused() -> None:
    body = {k: v for k, v in VALID.items() if k != "email"}
    r = client.post("/v1/tickets", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "email"
