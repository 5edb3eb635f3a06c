"""desk's pure decisions about a learner's message: who sent it, what it continues by, and
what makes the same text on two channels one ticket."""

import uuid

import pytest

from services.desk.domain import content_key, same_learner, thread_contact
from shared.events import Channel, Learner, TicketSubmitted, now


def submitted(
    learner: Learner,
    *,
    channel: Channel = Channel.EMAIL,
    text: str = "课程视频打不开",
    external_id: str | None = None,
    by_contact: bool = False,
) -> TicketSubmitted:
    return TicketSubmitted(
        ticket_id=uuid.uuid4(),
        channel=channel,
        external_id=external_id,
        learner=learner,
        subject="s",
        description=text,
        language="zh",
        submitted_at=now(),
        by_contact=by_contact,
    )


@pytest.mark.parametrize(
    ("stored", "sender", "same"),
    [
        (
            {"name": "Li", "email": "Li@Example.com"},
            Learner(name="x", email="li@example.com"),
            True,
        ),
        (
            {"name": "Li", "email": "li@example.com"},
            Learner(name="Li", email="other@example.com"),
            False,
        ),
        (
            {"name": "Li", "phone": "+8613800000000"},
            Learner(name="y", phone="+8613800000000"),
            True,
        ),
        ({"name": "Li", "learner_id": "L1"}, Learner(name="Li", learner_id="L2"), False),
        (
            {"name": "微信用户", "wechat_openid": "o1"},
            Learner(name="微信用户", wechat_openid="o1"),
            True,
        ),
        # a name alone says nothing: two learners may share one
        ({"name": "Li"}, Learner(name="Li"), False),
        # nothing in common, even though both lack an e-mail (None is no match)
        ({"name": "A", "phone": "+861"}, Learner(name="B", wechat_openid="o2"), False),
    ],
)
def test_a_follow_up_is_the_learners_when_one_contact_is_shared(
    stored: dict[str, str], sender: Learner, same: bool
) -> None:
    assert same_learner(stored, sender) is same


def test_channels_without_threads_continue_by_their_own_contact() -> None:
    learner = Learner(name="x", email="a@example.com", phone="+8613800000000", wechat_openid="o1")
    assert thread_contact(submitted(learner, channel=Channel.WECHAT, by_contact=True)) == "o1"
    assert thread_contact(submitted(learner, channel=Channel.HOTLINE, by_contact=True)) == (
        "+8613800000000"
    )
    assert thread_contact(submitted(learner, channel=Channel.WECHAT)) is None  # not asked to


def test_the_same_learners_same_text_is_the_same_key_whatever_the_spacing() -> None:
    learner = Learner(name="x", email="a@example.com")
    by_mail = content_key(submitted(learner, text="课程视频\n打不开  了"))
    by_form = content_key(submitted(learner, channel=Channel.WEB, text=" 课程视频 打不开 了 "))
    assert by_mail is not None and by_mail == by_form
    assert (
        content_key(submitted(Learner(name="x", email="b@example.com"), text="课程视频 打不开 了"))
        != by_mail
    )


def test_a_sender_key_or_no_contact_at_all_makes_no_content_key() -> None:
    assert (
        content_key(submitted(Learner(name="x", email="a@example.com"), external_id="lms-1"))
        is None
    )
    assert content_key(submitted(Learner(name="匿名"))) is None  # an anonymous suggestion
