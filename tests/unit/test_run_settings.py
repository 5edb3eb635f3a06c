"""The settings `bin/careloop run` exports are ones every service accepts: a default there that
a service's settings refuse stops that service, and honcho then stops the whole local run."""

import importlib
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
# `export NAME="${NAME-default}"`: the run command's defaults, each kept when already set
EXPORT = re.compile(r'^\s*export (CARELOOP_\w+)="\$\{\1-([^}]*)\}"', re.MULTILINE)


def run_defaults() -> dict[str, str]:
    script = (ROOT / "bin" / "careloop").read_text(encoding="utf-8")
    run = script[script.index("\n  run)") : script.index("\n  test)")]
    return dict(EXPORT.findall(run))


def settings_classes() -> list[type[BaseSettings]]:
    found = []
    for path in sorted(ROOT.glob("services/**/settings.py")):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        found += [
            v
            for v in vars(module).values()
            if isinstance(v, type)
            and issubclass(v, BaseSettings)
            and v.__module__ == module.__name__
        ]
    return found


def test_the_run_command_exports_defaults_it_can_be_read_with() -> None:
    defaults = run_defaults()
    assert "CARELOOP_REPORTS_RECIPIENTS" in defaults  # the pattern finds the exports


@pytest.mark.parametrize("settings", settings_classes(), ids=lambda c: c.__module__)
def test_every_service_accepts_the_run_commands_settings(
    settings: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in run_defaults().items():
        monkeypatch.setenv(name, value)

    settings()  # raises pydantic's ValidationError naming the setting it refuses
