"""The Weibo sender's decisions without I/O: the text limit and what each error_code means."""

from services.notify.channels import ChannelError
from services.notify.channels.weibo import MAX_TEXT_CHARS, classify, fit_text
from services.notify.domain import Undeliverable


def test_a_text_under_300_characters_goes_as_it_is_and_a_longer_one_is_cut() -> None:
    assert fit_text("您" * MAX_TEXT_CHARS) == "您" * MAX_TEXT_CHARS
    cut = fit_text("您" * 400)
    assert len(cut) == MAX_TEXT_CHARS
    assert cut.endswith("…")


def test_errors_are_classified() -> None:
    no_quota = classify(400, 21602, "no quota for this user")
    bad_token = classify(403, 21332, "invalid_access_token")
    busy = classify(503, None, "")
    bad_param = classify(400, 10008, "param error")

    assert isinstance(no_quota, Undeliverable)
    assert isinstance(bad_token, ChannelError) and not bad_token.permanent
    assert isinstance(busy, ChannelError) and not busy.permanent
    assert isinstance(bad_param, ChannelError) and bad_param.permanent
