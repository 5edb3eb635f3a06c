"""The one text validation every entry point uses."""

import pytest
from pydantic import BaseModel, ValidationError

from shared.text import Line, Text, problem


class Form(BaseModel):
    name: Line
    body: Text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\x00b", "NUL"),
        ("a\ud800b", "lone surrogate"),
        ("bell\x07", "control character (U+0007)"),
        ("c1\x85", "control character (U+0085)"),
        ("del\x7f", "control character (U+007F)"),
    ],
)
def test_text_refuses_what_storage_cannot_keep_and_says_what_and_where(
    value: str, reason: str
) -> None:
    assert reason in (problem(value, multiline=True) or "")


def test_text_keeps_line_breaks_tabs_chinese_and_emoji() -> None:
    assert problem("第一行\r\n\tsecond line 😀", multiline=True) is None


@pytest.mark.parametrize("value", ["two\nlines", "carriage\rreturn", "tab\there", "sep\u2028x"])
def test_a_line_refuses_anything_that_breaks_a_header(value: str) -> None:
    assert problem(value, multiline=False) is not None


def test_models_name_the_field_and_the_problem() -> None:
    with pytest.raises(ValidationError) as info:
        Form(name="Li\nLei", body="ok\x00")
    errors = {e["loc"][0]: e["msg"] for e in info.value.errors()}
    assert "line break at position 2" in errors["name"]
    assert "NUL character at position 2" in errors["body"]
