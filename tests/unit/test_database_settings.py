"""Each service connects with its own DSN when it has one; the local stack hands out one each."""

import json
import stat
from pathlib import Path

import pytest

from deploy.local.stack import Stack, provision_sql
from shared.settings import CommonSettings


def test_a_services_own_dsn_replaces_the_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELOOP_DESK_PG_DSN", "postgresql://careloop_desk:pw@db/careloop")
    settings = CommonSettings(pg_dsn="postgresql://db/careloop")  # type: ignore[arg-type]
    desk = settings.for_service("desk")
    assert desk.pg_dsn.get_secret_value() == "postgresql://careloop_desk:pw@db/careloop"


def test_a_service_without_its_own_dsn_keeps_the_shared_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELOOP_DESK_PG_DSN", "postgresql://careloop_desk:pw@db/careloop")
    monkeypatch.delenv("CARELOOP_ROUTING_PG_DSN", raising=False)
    settings = CommonSettings(pg_dsn="postgresql://db/careloop")  # type: ignore[arg-type]
    assert settings.for_service("routing").pg_dsn.get_secret_value() == "postgresql://db/careloop"


def test_prepare_refuses_a_cluster_that_trusts_every_connection(tmp_path: Path) -> None:
    pg = tmp_path / "pg"
    pg.mkdir()
    (pg / "PG_VERSION").write_text("15\n")
    (pg / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    with pytest.raises(SystemExit, match="trusted every local connection"):
        Stack(var=tmp_path).prepare()


def test_passwords_are_kept_readable_only_by_their_owner(tmp_path: Path) -> None:
    pg = tmp_path / "pg"
    pg.mkdir()
    (pg / "PG_VERSION").write_text("15\n")
    (pg / "pg_hba.conf").write_text("local all all trust\n")
    with pytest.raises(SystemExit):  # refused after the passwords were generated
        Stack(var=tmp_path).prepare()
    path = tmp_path / "pg-passwords.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(json.loads(path.read_text()).values())) == 8  # seven services, the admin


def test_the_stack_gives_each_service_its_own_role_and_no_admin_password(tmp_path: Path) -> None:
    passwords = {
        f"careloop_{s}": f"pw-{s}"
        for s in ("desk", "routing", "notify", "survey", "knowledge", "incident")
    }
    passwords |= {"careloop_metrics": "pw-metrics", "careloop_admin": "pw-admin"}
    (tmp_path / "pg-passwords.json").write_text(json.dumps(passwords))
    env = Stack(var=tmp_path, pg_port=5999).service_env()
    assert env["CARELOOP_ENV"] == "local"
    assert env["CARELOOP_ROUTING_PG_DSN"] == (
        "postgresql://careloop_routing:pw-routing@127.0.0.1:5999/careloop"
    )
    assert not any("pw-admin" in value for value in env.values())


def test_provisioning_refuses_a_password_that_would_break_out_of_its_quotes() -> None:
    with pytest.raises(ValueError, match="careloop_desk"):
        provision_sql({"desk": "x'; DROP ROLE careloop_admin; --"}, admin_password="pw")
