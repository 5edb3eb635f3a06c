"""The priority rule table, the time phrases it reads in a ticket's text, and the learner's
next class or exam from the LMS snapshot."""

from datetime import UTC, datetime, timedelta

import pytest

from services.routing.triage.model import normal
from services.routing.triage.priority import (
    STANDING,
    Situation,
    blocked,
    decide,
    minutes_in_text,
    minutes_to_next,
    no_hurry,
    standing,
    text_level,
)
from shared.events import Category, LearnerContext, LearnerCourse, LearnerExam, Priority

C, P = Category, Priority


@pytest.mark.parametrize(
    ("case", "situation", "expected"),
    [
        # what the text says stands when nothing else applies
        ("a plain problem", Situation(C.TECHNICAL, P.MEDIUM, None), P.MEDIUM),
        ("live compromise", Situation(C.ACCOUNT_SECURITY, P.URGENT, None), P.URGENT),
        ("money taken now", Situation(C.PAYMENT_REFUND, P.URGENT, None), P.URGENT),
        (
            "urgent-sounding text, no compromise, nothing soon",
            Situation(C.TECHNICAL, P.URGENT, None),
            P.HIGH,
        ),
        ("在不在 在不在", Situation(C.OTHER, P.URGENT, None), P.HIGH),
        (
            "codes I never asked for, read as technical, account likely enough: live compromise",
            Situation(C.TECHNICAL, P.URGENT, None, live_p=0.3),
            P.URGENT,
        ),
        (
            "urgent-sounding, account or money unlikely",
            Situation(C.TECHNICAL, P.URGENT, None, live_p=0.1),
            P.HIGH,
        ),
        (
            "negated hack: forgot the password",
            Situation(C.ACCOUNT_SECURITY, P.MEDIUM, None),
            P.MEDIUM,
        ),
        ("prevention question", Situation(C.ACCOUNT_SECURITY, P.LOW, None), P.LOW),
        # a class or exam the problem blocks
        ("class in 90 min", Situation(C.TECHNICAL, P.MEDIUM, 90), P.URGENT),
        ("class starting now", Situation(C.TECHNICAL, P.MEDIUM, 0), P.URGENT),
        ("class in exactly 2 h", Situation(C.TECHNICAL, P.MEDIUM, 120), P.URGENT),
        ("class in 20 h", Situation(C.TECHNICAL, P.MEDIUM, 20 * 60), P.HIGH),
        ("class in exactly 24 h", Situation(C.COURSE_CHANGE, P.MEDIUM, 1440), P.HIGH),
        ("class in 25 h", Situation(C.TECHNICAL, P.MEDIUM, 25 * 60), P.MEDIUM),
        ("class in 3 days", Situation(C.TECHNICAL, P.MEDIUM, 3 * 1440), P.MEDIUM),
        ("exam in 45 min, admission ticket", Situation(C.EXAM_CERTIFICATE, P.MEDIUM, 45), P.URGENT),
        ("locked out, class in 50 min", Situation(C.ACCOUNT_SECURITY, P.MEDIUM, 50), P.URGENT),
        (
            "prevention question, class in 30 min: nothing blocked",
            Situation(C.ACCOUNT_SECURITY, P.LOW, 30, False),
            P.LOW,
        ),
        (
            "exam info question, exam in 1 h: nothing blocked",
            Situation(C.EXAM_CERTIFICATE, P.LOW, 60, False),
            P.LOW,
        ),
        (
            "any way to get into the room? class in 50 min: a question's phrasing still blocks",
            Situation(C.TECHNICAL, P.LOW, 50),
            P.URGENT,
        ),
        (
            "is the coffee free? exam in 1 h: the blocking model says it blocks nothing",
            Situation(C.OTHER, P.LOW, 60, False),
            P.LOW,
        ),
        (
            "admission ticket left at the centre, exam in 1 h: other can block too",
            Situation(C.OTHER, P.MEDIUM, 60, True),
            P.URGENT,
        ),
        (
            "invoice, class in 1 h: no block",
            Situation(C.PAYMENT_REFUND, P.MEDIUM, 60, False),
            P.MEDIUM,
        ),
        ("payment locks the class in 40 min", Situation(C.PAYMENT_REFUND, P.MEDIUM, 40), P.URGENT),
        ("study plan, class in 1 h", Situation(C.LEARNING_GUIDANCE, P.MEDIUM, 60, False), P.MEDIUM),
        (
            "exam in 1 h, any last tips: advice blocks nothing, whatever the model says",
            Situation(C.LEARNING_GUIDANCE, P.MEDIUM, 60, True),
            P.MEDIUM,
        ),
        (
            "move next month's classes, class in 20 min",
            Situation(C.COURSE_CHANGE, P.MEDIUM, 20, False),
            P.MEDIUM,
        ),
        (
            "can't make the class in 45 min, move it",
            Situation(C.COURSE_CHANGE, P.MEDIUM, 45),
            P.URGENT,
        ),
        (
            "crash, but joins on the phone: class in 1 h",
            Situation(C.TECHNICAL, P.MEDIUM, 60, False),
            P.MEDIUM,
        ),
        ("crash, no workaround, class in 20 h", Situation(C.TECHNICAL, P.MEDIUM, 1200), P.HIGH),
        # complaints, suggestions, other
        ("complaint", Situation(C.COMPLAINT, P.MEDIUM, None), P.HIGH),
        ("complaint said high", Situation(C.COMPLAINT, P.HIGH, None), P.HIGH),
        ("teacher absent, class running", Situation(C.COMPLAINT, P.URGENT, 0), P.URGENT),
        (
            "complaint, class in 1 h it does not block",
            Situation(C.COMPLAINT, P.HIGH, 60, False),
            P.HIGH,
        ),
        ("suggestion", Situation(C.SUGGESTION, P.MEDIUM, None), P.LOW),
        ("suggestion said urgent", Situation(C.SUGGESTION, P.URGENT, 10), P.LOW),
        ("greeting", Situation(C.OTHER, P.LOW, None), P.LOW),
        # VIP: one step, up to high at most
        ("vip low", Situation(C.PAYMENT_REFUND, P.LOW, None, vip=True), P.MEDIUM),
        ("vip, class in 20 h", Situation(C.TECHNICAL, P.MEDIUM, 1200, vip=True), P.HIGH),
        ("vip medium", Situation(C.PAYMENT_REFUND, P.MEDIUM, None, vip=True), P.HIGH),
        ("vip high stays high", Situation(C.COMPLAINT, P.HIGH, None, vip=True), P.HIGH),
        ("vip is never urgent by tier", Situation(C.TECHNICAL, P.HIGH, None, vip=True), P.HIGH),
        ("vip urgent stays urgent", Situation(C.TECHNICAL, P.MEDIUM, 30, vip=True), P.URGENT),
        ("vip suggestion", Situation(C.SUGGESTION, P.LOW, None, vip=True), P.MEDIUM),
    ],
)
def test_the_rule_table(case: str, situation: Situation, expected: Priority) -> None:
    level, rule = decide(situation)

    assert level is expected, f"{case}: {rule}"


def test_the_rule_that_set_the_priority_is_named() -> None:
    assert decide(Situation(C.TECHNICAL, P.MEDIUM, 90)) == (
        P.URGENT,
        "blocks a class or exam within 2 h",
    )
    assert decide(Situation(C.PAYMENT_REFUND, P.MEDIUM, None, vip=True)) == (
        P.HIGH,
        "text; VIP one step up",
    )


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("Can't join, my class starts in 20 minutes", 20),
        ("lesson in half an hour and the mic is dead", 30),
        ("my exam is in 2 hours, no admission ticket", 120),
        ("class in 3 days, can I move it?", 3 * 1440),
        ("the class has started and I am stuck on the loading screen", 0),
        ("半小时后就要上课了，摄像头用不了", 30),
        ("一个半小时以后就考试了 准考证还没收到", 90),
        ("二十分钟后就要上课了 怎么办", 20),
        ("考试还有不到两小时", 120),
        ("已在考点门口，考试十点开始（还有约40分钟）", 40),
        ("还有大约一个小时上课 教室进不去", 60),
        ("马上上课了进不去直播间", 0),
        ("今晚七点的课进不去", 600),
        ("明天上午的课能改到下午吗", 1440),
        ("I need help with tonight's class recording", 600),
        ("过半小时就上课了 还是进不去", 30),  # "过" ahead; "过了" is a span behind
        ("Caller is at the test centre, exam starts in an hour and a half", 90),
    ],
)
def test_time_phrases_in_the_text_count_as_a_class_soon(text: str, minutes: int) -> None:
    assert minutes_in_text(normal("", text))[0] == minutes


@pytest.mark.parametrize(
    "text",
    [
        "I'll pay the invoice tomorrow, please resend it",  # no class near the time
        "请在明天之前把发票开好",
        "不急，下周的课能不能调一下",  # no hurry
        "no rush — can my lesson in 20 minutes be recorded?",
        "I started the course last year and love it",
        "my classes were moved to a centre 1.5 hours away",  # a distance, not a time
        "上周六的课老师没来 等了半小时 也没人说一声",  # a span that passed
        "上课的时候每隔两分钟就掉线一次",  # a span that repeats
        "老师上课迟到了二十分钟",
        "每节视频还剩一两分钟就自己切到后面一课了",  # a numbered lesson of a recording
        "can I join a class that already started last week? I want to switch intakes",
        "my exam is later today. just a question for afterwards: is the score on it?",
    ],
)
def test_a_time_without_a_class_or_with_no_hurry_counts_for_nothing(text: str) -> None:
    assert minutes_in_text(normal("", text)) == (None, None)


# 17:30 in Beijing
WRITTEN = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("今晚七点的课进不去", 90),
        ("今天晚上7点半的直播课 摄像头用不了", 120),
        ("下午五点的考试还没收到准考证", 0),  # began half an hour ago: now
        ("my class at 6pm won't load", 30),
        ("exam at 19:00 and the page is blank", 90),
        ("上午九点的课错过了", None),  # long past: another day's
    ],
)
def test_a_clock_time_today_counts_from_when_the_ticket_was_written(
    text: str, minutes: int | None
) -> None:
    assert minutes_in_text(normal("", text), WRITTEN)[0] == minutes


def test_without_the_time_written_a_clock_time_tonight_is_within_the_day() -> None:
    assert minutes_in_text(normal("", "今晚七点的课进不去"))[0] == 600


def test_the_soonest_of_several_times_counts() -> None:
    assert minutes_in_text(normal("", "明天还有考试，但是20分钟后就上课了"))[0] == 20


@pytest.mark.parametrize(
    ("category", "label", "vip", "soon", "said"),
    [
        (C.TECHNICAL, P.MEDIUM, False, None, P.MEDIUM),
        (C.ACCOUNT_SECURITY, P.URGENT, False, None, P.URGENT),
        (C.TECHNICAL, P.URGENT, True, None, P.URGENT),
        (C.PAYMENT_REFUND, P.MEDIUM, True, None, P.LOW),
        (C.COMPLAINT, P.HIGH, True, None, P.HIGH),
        (C.PAYMENT_REFUND, P.HIGH, True, None, None),  # a raised medium, or a class within 24 h
        (C.TECHNICAL, P.URGENT, False, 30, None),  # the class may have raised it
        (C.TECHNICAL, P.MEDIUM, False, 3 * 1440, P.MEDIUM),
        (C.SUGGESTION, P.LOW, False, None, None),  # the table sets suggestions
    ],
)
def test_what_an_examples_text_says_without_the_vip_step_or_a_class_soon(
    category: Category, label: Priority, vip: bool, soon: int | None, said: Priority | None
) -> None:
    assert text_level(category, label, vip=vip, soon=soon) is said


@pytest.mark.parametrize(
    ("category", "label", "vip", "soon", "blocks"),
    [
        (C.TECHNICAL, P.URGENT, False, 30, True),
        (C.TECHNICAL, P.MEDIUM, False, 30, False),  # a class in 30 min left it medium
        (C.COMPLAINT, P.HIGH, False, 90, False),
        (C.TECHNICAL, P.HIGH, False, 600, True),
        (C.TECHNICAL, P.MEDIUM, False, 600, False),
        (C.COMPLAINT, P.HIGH, False, 600, None),  # high anyway
        (C.TECHNICAL, P.HIGH, True, 600, None),  # a VIP's medium is high too
        (C.TECHNICAL, P.MEDIUM, False, 2000, None),  # too far to tell
        (C.TECHNICAL, P.MEDIUM, False, None, None),
    ],
)
def test_whether_an_examples_problem_blocks_its_class_or_exam(
    category: Category, label: Priority, vip: bool, soon: int | None, blocks: bool | None
) -> None:
    assert blocked(category, label, vip=vip, soon=soon) is blocks


@pytest.mark.parametrize(
    "text",
    [
        "不急，下周的课能不能调一下",
        "一小时后有课，不过跟这个没关系：上学期的课件下载报404",
        "class in 10 min so no need to reply now, but Q6 has a wrong answer",
        "I have a class in about 90 minutes, no problem there. Separately...",
        "the desktop app crashes, but it doesn't affect my class, I use the phone",
        "下个月开始想换到周末班",
        "class in 40 min but that's not why i'm writing: the invoice has the wrong name",
        "lesson in 10 min, quick q unrelated to it: when does my plan renew?",
        "还有二十分钟上课 不过不是为这个 上个月的发票抬头错了",
        "一小时后考试 跟考试没关系 就问下证书是纸质的吗",
        # the class or exam itself is fine
        "lesson in 25 min, all good there. where do I find last month's receipt?",
        "my exam in an hour is unaffected, I only want the certificate posted abroad",
        "class at 6 and i'll be there, but i want to file this about the rude receptionist",
        "40分钟后的课没问题，就是想问问下学期的价格",
        "一会儿的考试照常参加，顺便问下成绩单怎么打印",
        "半小时后上课哈，资料都齐的，上周那节回放没有声音",
        "my lesson in 50 min is fine, but the phishing text I got this morning...",
        "exam in an hour, not about that: my certificate has my name misspelt",
        "handout for today's class has a typo, class in 30 min, just so the teacher knows",
    ],
)
def test_a_text_that_says_nothing_is_blocked_now_is_in_no_hurry(text: str) -> None:
    assert no_hurry(normal("", text))


@pytest.mark.parametrize(
    "text",
    [
        "课已经开始了，我进不去直播间，急急急",
        "考试没问题吧？入口一直是灰的，还有二十分钟开考",
        "课程没问题 就是 app 打不开 马上上课了",
        "class in 15 min and the classroom link says expired",
        "is my class ok? it shows cancelled and it starts in 30 min",
    ],
)
def test_a_pressing_text_is_in_a_hurry(text: str) -> None:
    assert not no_hurry(normal("", text))


@pytest.mark.parametrize(
    ("text", "cues"),
    [
        ("someone in another country is logged in as me at this moment", {"now"}),
        ("my card was charged again, 4th charge now and it keeps charging", {"now"}),
        ("卡里的钱正在一笔一笔被转走", {"now"}),
        ("a login from Lagos three weeks ago; I changed my password that day", {"past", "done"}),
        ("上个月有陌生设备登录过，密码已经改了，之后一切正常", {"past", "done", "calm"}),
        ("got a reset code I never asked for. everything looks normal, just reporting", {"calm"}),
        ("somebody changed my password and now I can't log in", {"locked", "unasked"}),
        ("my password changed by itself, I never reset it", {"unasked"}),
        ("绑定的邮箱被换成了一个陌生的，不是我改的", {"unasked"}),
        # the notice of a change is no fix of the learner's
        ("登不上了，提示密码错误，我没改过密码，邮箱里有一封“密码已修改”", {"locked", "unasked"}),
        ("I didn't change my mind about the class", set()),
        ("mima bei ren gai le, deng bu shang", {"locked"}),
        ("I read the SMS code out to the man who phoned", {"handed"}),
        ("假客服让我开了屏幕共享", {"handed"}),
        ("how do I turn on two-step login, just to be safe?", {"hypothetical"}),
        ("万一账号被盗了怎么办", {"hypothetical"}),
        ("locked out after too many tries, my own fault, nobody hacked me", {"locked", "unharmed"}),
        ("有人冒充班主任要验证码 我没给", {"unharmed"}),
        ("the video in lesson 4 has no sound", set()),
    ],
)
def test_cues_tell_how_the_trouble_stands(text: str, cues: set[str]) -> None:
    given = standing(normal("", text))
    assert {name for name, on in zip(STANDING, given, strict=True) if on} == cues


AT = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def context(*, classes: tuple[int, ...] = (), exams: tuple[int, ...] = ()) -> LearnerContext:
    return LearnerContext(
        learner_id="L1",
        courses=(
            *(
                LearnerCourse(course_id=f"c{m}", next_class_at=AT + timedelta(minutes=m))
                for m in classes
            ),
            LearnerCourse(course_id="no-class"),
        ),
        exams=tuple(LearnerExam(exam_id=f"e{m}", at=AT + timedelta(minutes=m)) for m in exams),
        updated_at=AT,
    )


def test_the_next_class_or_exam_is_the_soonest_ahead() -> None:
    assert minutes_to_next(context(classes=(300, 90), exams=(2000,)), AT) == 90
    assert minutes_to_next(context(classes=(3000,), exams=(45,)), AT) == 45


def test_a_class_that_began_within_the_hour_counts_as_now() -> None:
    assert minutes_to_next(context(classes=(-40, 500)), AT) == 0


def test_a_class_long_past_or_no_context_counts_for_nothing() -> None:
    assert minutes_to_next(context(classes=(-300,)), AT) is None
    assert minutes_to_next(context(), AT) is None
    assert minutes_to_next(None, AT) is None
