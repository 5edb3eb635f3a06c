"""End-to-end fixtures: a private stack and all six services as real processes."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import SERVICES, RunningStack, ServiceProcess, port, running_stack

AGENTS = Path(__file__).with_name("agents.yaml")
PORTS = dict(zip(SERVICES, range(port(23081), port(23089)), strict=True))


@dataclass
class Platform:
    stack: RunningStack
    services: dict[str, ServiceProcess]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    logs = tmp_path_factory.mktemp("e2e-logs")
    with running_stack(port(23000)) as stack:
        env = {
            **stack.env,
            "CARELOOP_AGENTS_FILE": str(AGENTS),
            # Long enough for the ticket loop's learner to answer "not solved" before the
            # first resolution's survey is due (a reopening cancels it), even on a busy machine.
            "CARELOOP_SURVEY_DELAY_SECONDS": "6",
            # The tests' learners come back ticket after ticket, each surveyed.
            "CARELOOP_SURVEY_QUIET_DAYS": "0",
            "CARELOOP_SURVEY_POLL_SECONDS": "0.3",
            "CARELOOP_METRICS_REFRESH_SECONDS": "0.5",
            "CARELOOP_NOTIFY_CLAIM_SECONDS": "5",
            # SLA clocks in seconds for low priority (suggestions: test_sla), around the clock;
            # the other priorities keep their targets, which the ticket loop's e-mails promise.
            "CARELOOP_ROUTING_FIRST_RESPONSE_MINUTES": (
                '{"urgent": 30, "high": 120, "medium": 480, "low": 0.25}'
            ),
            "CARELOOP_ROUTING_RESOLUTION_MINUTES": (
                '{"urgent": 240, "high": 1440, "medium": 4320, "low": 0.5}'
            ),
            "CARELOOP_ROUTING_SLA_CALENDARS": '{"default": "24x7"}',
            "CARELOOP_ROUTING_SLA_WARN_SHARE": "0.5",
            # A closed case's call-back falls due at once and the case clock raises it within a
            # second (test_cases_flow records the call-back).
            "CARELOOP_DESK_CASE_CALLBACK_DAYS": "0",
            "CARELOOP_DESK_CASE_CLOCK_SECONDS": "0.5",
            **{f"CARELOOP_{name.upper()}_HTTP_PORT": str(port) for name, port in PORTS.items()},
            # intake asks desk for a new ticket's number (WeChat's instant reply, the page
            # after a suggestion)
            **{
                f"CARELOOP_{channel}_DESK_URL": f"http://127.0.0.1:{PORTS['desk']}"
                for channel in ("WECHAT", "WEIBO", "SUGGESTIONS")
            },
        }
        services = {
            name: ServiceProcess(name, PORTS[name], env, logs / f"{name}.log") for name in SERVICES
        }
        for s in services.values():
            s.start()
        try:
            for s in services.values():
                s.wait_healthy()
            yield Platform(stack, services)
        finally:
            for s in services.values():
                s.stop()
