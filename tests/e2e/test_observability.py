"""The local observability chain on the real parts: Prometheus scrapes every service of the e2e
platform with the shipped rules loaded, and Alertmanager e-mails an alert to the SMTP sink.

The rules are the shipped ones; only the local copy's evaluation interval and `for:` are
shortened (as `bin/careloop run` does with CARELOOP_STACK_ALERT_FOR), so an alert arrives in
seconds."""

import dataclasses
import subprocess
import uuid
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import httpx
import pytest

from deploy.local.harness import wait_for_port
from deploy.local.observability import ALERT_TO, RULES_DIR, Observability
from tests.e2e.conftest import Platform
from tests.support import eventually

SHIPPED_RULES = {path.name for path in RULES_DIR.glob("*.yml")}
SAM = {"Authorization": "Bearer e2e-sam-token"}  # the e2e supervisor (tests/e2e/agents.yaml)


@pytest.fixture(scope="module")
def observability(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observability]:
    stack = platform.stack.stack
    folder = tmp_path_factory.mktemp("observability")
    local = dataclasses.replace(stack.observability(alert_for="1s"), folder=folder, interval="1s")
    local.write_prometheus({name: s.port for name, s in platform.services.items()})
    local.write_alertmanager()
    processes = []
    try:
        for name, argv in (
            ("prometheus", local.prometheus_argv()),
            ("alertmanager", local.alertmanager_argv()),
        ):
            with open(folder / f"{name}.log", "wb") as log:
                processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        wait_for_port(local.prometheus_port)
        wait_for_port(local.alertmanager_port)
        yield local
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_prometheus_scrapes_every_service_with_the_rules_loaded(
    platform: Platform, observability: Observability
) -> None:
    async with httpx.AsyncClient(base_url=observability.prometheus_url, timeout=5) as client:

        async def all_up() -> dict[str, str] | None:
            targets = (await client.get("/api/v1/targets")).json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            return (
                health
                if set(health) == set(platform.services) and set(health.values()) == {"up"}
                else None
            )

        await eventually(all_up, timeout=30)
        groups = (await client.get("/api/v1/rules")).json()["data"]["groups"]
    assert SHIPPED_RULES, f"no rules in {RULES_DIR}"
    assert {Path(g["file"]).name for g in groups} == SHIPPED_RULES
    alerts = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert "CareloopTeamQueueUnattended" in alerts


async def test_a_team_queue_nobody_attends_reaches_the_smtp_sink_as_an_alert(
    platform: Platform, observability: Observability
) -> None:
    """finance's only agent goes offline and a refund request waits in finance's queue."""
    routing = platform.url("routing")
    async with httpx.AsyncClient(timeout=10) as client:
        offline = await client.put(
            f"{routing}/v1/agents/fei/presence", json={"online": False}, headers=SAM
        )
        assert offline.status_code == 200, offline.text
        try:
            submitted = await client.post(
                f"{platform.url('intake')}/v1/tickets",
                json={
                    "name": "Wang Fang",
                    "email": f"wang.fang.{uuid.uuid4().hex[:8]}@example.com",
                    "subject": "Refund for a course I was charged twice for",
                    "description": "My card was charged twice for the Python course. "
                    "Please refund the second payment.",
                    "external_id": f"observability-{uuid.uuid4()}",
                },
            )
            assert submitted.status_code == 202, submitted.text

            async def alert_mail() -> Message | None:
                return next(
                    (
                        m
                        for m in platform.stack.mails()
                        if "CareloopTeamQueueUnattended" in str(m["Subject"])
                        and "finance" in str(m["Subject"])
                        and "FIRING" in str(m["Subject"])
                    ),
                    None,
                )

            mail = await eventually(alert_mail, timeout=60, interval=0.5)
        finally:
            online = await client.put(
                f"{routing}/v1/agents/fei/presence", json={"online": True}, headers=SAM
            )
            assert online.status_code == 200, online.text
    assert str(mail["To"]) == ALERT_TO
    body = mail.get_body(("html", "plain"))
    assert body is not None and "docs/runbooks.md" in body.get_content()
