"""Unit tests for shared.logs: personal data is masked, identifiers are left readable."""

import pytest

from shared.logs import mask, mask_processor

# ---- e-mail addresses ---------------------------------------------------------------------


def test_mask_keeps_only_the_first_letter_and_the_domain_of_an_email() -> None:
    assert mask("from alice.smith@example.com today") == "from a***@example.com today"


def test_mask_masks_every_email_in_the_text() -> None:
    assert mask("a.b@x.org, carol@y.cn") == "a***@x.org, c***@y.cn"


def test_mask_masks_an_email_written_after_a_chinese_colon() -> None:
    assert mask("邮箱：alice@example.com，谢谢") == "邮箱：a***@example.com，谢谢"


def test_mask_takes_chinese_letters_touching_an_address_as_part_of_its_local_part() -> None:
    # 邮箱alice@example.com is itself a valid internationalised address: mask all of it.
    assert mask("邮箱alice@example.com谢谢") == "邮***@example.com谢谢"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("to 用户@例子.中国 now", "to 用***@例子.中国 now"),
        ("to user@bücher.de now", "to u***@bücher.de now"),
        ("to josé.garcía@correo.es", "to j***@correo.es"),
        ("to пользователь@почта.рф", "to п***@почта.рф"),
        ("to user@xn--bcher-kva.de", "to u***@xn--bcher-kva.de"),
        ("写给用户＠例子。中国", "写***@例子。中国"),
    ],
)
def test_mask_masks_internationalised_addresses_in_any_script(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_mask_masks_an_address_inside_an_exception_repr() -> None:
    error = UnicodeEncodeError("ascii", "用户@例子.中国", 0, 2, "ordinal not in range(128)")

    assert "用户" not in mask(repr(error))


@pytest.mark.parametrize("escaped", [repr("用户@例子.中国".encode()), repr("用户@例子.中国")[1:-1]])
def test_mask_masks_an_address_whose_local_part_is_escaped(escaped: str) -> None:
    assert "@" in escaped
    masked = mask(escaped)

    assert r"\xe7\x94" not in masked and "用户" not in masked and "***@" in masked


def test_mask_scans_a_long_run_of_letters_without_an_address_quickly() -> None:
    text = "a" * 200_000 + " done"

    assert mask(text) == text


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


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("手机：１３８１２３４５６７８", "手机：***７８"),
        ("电话 ＋８６ １３８－１２３４－５６７８", "电话 ***７８"),
        ("电话（010）6552 9988", "电话***88"),
        ("座机 010-65529988 转 2", "座机 ***88 转 2"),
        ("热线 400-810-8888", "热线 ***88"),
        ("tel 138\u30001234\u30005678", "tel ***78"),  # ideographic spaces
        ("+86 (10) 6552-9988", "***88"),
        ("هاتف ٠١٢٣٤٥٦٧٨٩", "هاتف ***٨٩"),
    ],
)
def test_mask_masks_phone_numbers_in_any_digits_and_chinese_formats(text: str, masked: str) -> None:
    assert mask(text) == masked


# ---- Chinese ID numbers -------------------------------------------------------------------


@pytest.mark.parametrize("id_number", ["110101199003074514", "11010119900307451X"])
def test_mask_replaces_a_chinese_id_number(id_number: str) -> None:
    assert mask(f"ID {id_number} checked") == "ID [id-number] checked"


def test_mask_replaces_an_id_number_written_inside_chinese_text() -> None:
    assert mask("身份证110101199003074514已核实") == "身份证[id-number]已核实"


@pytest.mark.parametrize(
    "id_number", ["１１０１０１１９９００３０７４５１Ｘ", "110101900307451", "11010119900307451x"]
)
def test_mask_replaces_full_width_and_old_fifteen_digit_id_numbers(id_number: str) -> None:
    assert mask(f"身份证号：{id_number}。") == "身份证号：[id-number]。"


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
