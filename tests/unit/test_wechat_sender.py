"""The WeChat sender's decisions without I/O: the text limit and what each errcode means."""

import pytest

from services.notify.channels import ChannelError
from services.notify.channels.wechat import MAX_TEXT_BYTES, classify, fit_text
from services.notify.domain import Undeliverable


def test_a_text_within_2048_bytes_goes_as_it_is() -> None:
    text = "您" * (MAX_TEXT_BYTES // 3)
    assert fit_text(text) == text


def test_a_longer_text_is_cut_on_a_character_and_ends_with_an_ellipsis() -> None:
    cut = fit_text("您好" * 1000)
    assert len(cut.encode()) <= MAX_TEXT_BYTES
    assert cut.endswith("…")
    assert cut.startswith("您好您好")


@pytest.mark.parametrize("errcode", [40003, 43004, 45015, 45047])
def test_a_learner_out_of_reach_is_undeliverable(errcode: int) -> None:
    assert isinstance(classify(errcode, "x"), Undeliverable)


def test_the_48_hour_window_is_named_in_the_reason() -> None:
    assert "48 hours" in str(classify(45015, "response out of time limit"))


@pytest.mark.parametrize("errcode", [-1, 45009, 40125])
def test_busy_rate_limited_or_misconfigured_is_retried(errcode: int) -> None:
    failure = classify(errcode, "x")
    assert isinstance(failure, ChannelError)
    assert not failure.permanent
