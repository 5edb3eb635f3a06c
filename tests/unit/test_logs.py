"""Unit tests for shared.logs: personal data is masked, identifiers are left readable."""

import pytest

from shared.logs import mask, mask_processor

# ---- e-mail addresses ---------------------------------------------------------------------


def test_mask_keeps_only_the_first_letter_and_the_domain_of_an_email() -> None:
    assert mask("from alice.smith@example.com today") == "from a***@example.com today"


def test_mask_masks_every_email_in_the_text() -> None:
    assert mask("a.b@x.org, carol@y.cn") == "a***@x.org, c***@y.cn"


def test_mask_masks_an_email_written_inside_chinese_text() -> None:
    assert mask("邮箱alice@example.com谢谢") == "邮箱a***@example.com谢谢"


# ---- phone numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call +86 138-1234-5678 please", "call ***78 please"),
        ("call 13812345678 please", "call ***78 please"),
        ("tel: 138 1234 5678", "tel: ***78"),
        ("手机：13812345678", "手机：***78"),
    ],
)
def test_mask_keeps_only_the_last_two_digits_of_a_phone_number(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_mask_masks_a_phone_number_written_right_after_chinese_characters() -> None:
    assert mask("请拨打13812345678联系我") == "请拨打***78联系我"


# ---- Chinese ID numbers -------------------------------------------------------------------


@pytest.mark.parametrize("id_number", ["110101199003074514", "11010119900307451X"])
def test_mask_replaces_a_chinese_id_number(id_number: str) -> None:
    assert mask(f"ID {id_number} checked") == "ID [id-number] checked"


def test_mask_replaces_an_id_number_written_inside_chinese_text() -> None:
    assert mask("身份证110101199003074514已核实") == "身份证[id-number]已核实"


# ---- what stays readable ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ticket 0190a3b2-7c1d-7e2f-8a3b-1234567890ab",
        "ticket CL-000123 and CL-1234567",
        "due 2024-05-17",
        "from 2024-05-17 to 2024-06-01",
        "at 2024-05-17T10:30:00+00:00",
        "at 2024-05-17 10:30:00",
    ],
)
def test_mask_leaves_uuids_ticket_numbers_and_dates_alone(text: str) -> None:
    assert mask(text) == text


def test_mask_leaves_a_uuid_of_only_decimal_digits_alone() -> None:
    text = "ticket 00000000-0000-0000-0000-000000000001"

    assert mask(text) == text


# ---- mask_processor -----------------------------------------------------------------------


def test_mask_processor_masks_strings_nested_in_dicts_and_lists() -> None:
    event = {
        "event": "contact updated",
        "learner": {"email": "alice@example.com", "phones": ["13812345678"]},
        "attempts": 3,
    }

    assert mask_processor(None, "info", event) == {
        "event": "contact updated",
        "learner": {"email": "a***@example.com", "phones": ["***78"]},
        "attempts": 3,
    }
