"""The demo agents load only in a local run; production needs agents with tokens of their own."""

from pathlib import Path

import pytest

from shared.agents import DemoCredentialsRefused, load_agents
from shared.settings import DEFAULT_AGENTS_FILE, CommonSettings, Environment

OWN = "agents:\n  - {id: ada, name: Ada, teams: [finance], token: 4f9c1e0b7a2d4c5e8f3b}\n"


def agents_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_local_run_loads_the_demo_agents() -> None:
    seed = load_agents(CommonSettings(env=Environment.LOCAL))
    assert "sam" in {a.id for a in seed.agents}


def test_production_is_the_default_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARELOOP_ENV", raising=False)
    assert CommonSettings().env is Environment.PRODUCTION


def test_production_without_an_agents_file_refuses_to_start() -> None:
    settings = CommonSettings(env=Environment.PRODUCTION, agents_file=DEFAULT_AGENTS_FILE)
    with pytest.raises(DemoCredentialsRefused, match="no agents configured"):
        load_agents(settings)


def test_production_refuses_a_file_with_a_demo_token(tmp_path: Path) -> None:
    demo = "agents:\n  - {id: boss, name: Boss, teams: [finance], token: demo-sam-token}\n"
    settings = CommonSettings(env=Environment.PRODUCTION, agents_file=agents_file(tmp_path, demo))
    with pytest.raises(DemoCredentialsRefused, match="demo tokens to boss"):
        load_agents(settings)


def test_production_refuses_a_token_named_demo(tmp_path: Path) -> None:
    demo = "agents:\n  - {id: ada, name: Ada, teams: [finance], token: demo-ada-secret}\n"
    settings = CommonSettings(env=Environment.PRODUCTION, agents_file=agents_file(tmp_path, demo))
    with pytest.raises(DemoCredentialsRefused, match="demo tokens to ada"):
        load_agents(settings)


def test_production_loads_agents_with_tokens_of_their_own(tmp_path: Path) -> None:
    settings = CommonSettings(env=Environment.PRODUCTION, agents_file=agents_file(tmp_path, OWN))
    assert [a.id for a in load_agents(settings).agents] == ["ada"]
