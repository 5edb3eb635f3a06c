"""SMS length and numbers, decided without I/O: segments, cutting with the link, E.164."""

import pytest

from services.notify.channels import ChannelError
from services.notify.channels.sms import classify, e164, fit, segments
from services.notify.domain import Undeliverable

LINK = "https://care.example/t/CL-000123?k=Zx8d0Qm2hY7rLw4T"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # an extension character takes two septets
        ("€" * 81, 2),
        ("您" * 70, 1),
        ("您" * 71, 2),
        ("您" * 134, 2),
        ("您" * 135, 3),
        ("a" * 69 + "😀", 2),  # an emoji is two UTF-16 units, and makes the text UCS-2
    ],
)
def test_segments_follow_gsm_7_and_ucs_2(text: str, parts: int) -> None:
    assert segments(text) == parts


def test_a_text_within_the_limit_goes_as_it_is() -> None:
    text = f"您的工单 CL-000123 已解决。详情：{LINK}"
    assert fit(text, link=LINK, max_segments=2) == text


def test_a_long_chinese_text_is_cut_and_keeps_the_link_whole() -> None:
    text = "您好，" + "关于您反馈的课程视频无法播放的问题，我们已经排查。" * 20 + f" 详情：{LINK}"
    cut = fit(text, link=LINK, max_segments=3)

    assert segments(cut) <= 3
    assert cut.endswith(f"… {LINK}")
    assert cut.startswith("您好，关于您反馈的")
    assert len(cut) > 3 * 67 - len(LINK) - 10  # it uses the room it has


def test_a_long_ascii_text_is_cut_with_dots_so_it_stays_gsm() -> None:
    cut = fit("Your ticket was answered. " * 30, link=LINK, max_segments=2)

    assert cut.endswith(f"... {LINK}")
    assert segments(cut) <= 2
    assert len(cut) > 280  # still GSM-7: 153 characters a part


def test_without_a_link_the_text_is_cut_with_an_ellipsis() -> None:
    cut = fit("您" * 500, link=None, max_segments=1)
    assert cut == "您" * 69 + "…"


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("13812345678", "+8613812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_numbers_are_sent_in_e164(raw: str, number: str) -> None:
    assert e164(raw) == number


@pytest.mark.parametrize("raw", ["", "12345", "+0123456789", "call me", "+1234567890123456"])
def test_what_is_not_a_reachable_number_is_undeliverable(raw: str) -> None:
    with pytest.raises(Undeliverable, match=r"E\.164"):
        e164(raw)


def test_provider_refusals_are_classified() -> None:
    assert isinstance(classify(422, {"error": {"code": "invalid_number"}}), Undeliverable)
    wrong_key = classify(401, {"error": {"code": "unauthorized"}})
    busy = classify(429, {"error": {"code": "rate_limited"}})
    too_long = classify(422, {"error": {"code": "text_too_long", "message": "11 segments"}})
    assert isinstance(wrong_key, ChannelError) and not wrong_key.permanent
    assert isinstance(busy, ChannelError) and not busy.permanent
    assert isinstance(too_long, ChannelError) and too_long.permanent
    assert "text_too_long" in str(too_long)
