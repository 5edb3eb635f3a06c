"""The seed's first passwords: the demo ones load only in a local run."""

from pathlib import Path

import pytest

from shared.agents import DemoCredentialsRefused, load_agents
from shared.settings import CommonSettings, Environment


def seed_file(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "agents:\n  - {id: ada, name: Ada, teams: [], role: admin, "
        f"token: 4f9c1e0b7a2d4c5e8f3b, password: {password}}}\n",
        encoding="utf-8",
    )
    return path


def test_the_demo_users_have_passwords_in_a_local_run() -> None:
    seed = load_agents(CommonSettings(env=Environment.LOCAL))
    assert {a.id: a.password for a in seed.agents}["alice"] == "demo-alice-pass"


def test_production_refuses_a_demo_password(tmp_path: Path) -> None:
    settings = CommonSettings(
        env=Environment.PRODUCTION, agents_file=seed_file(tmp_path, "demo-admin-pass")
    )
    with pytest.raises(DemoCredentialsRefused, match="demo passwords to ada"):
        load_agents(settings)


def test_production_takes_a_first_password_of_its_own(tmp_path: Path) -> None:
    settings = CommonSettings(
        env=Environment.PRODUCTION, agents_file=seed_file(tmp_path, "x9-long-enough-secret")
    )
    assert load_agents(settings).agents[0].password == "x9-long-enough-secret"
