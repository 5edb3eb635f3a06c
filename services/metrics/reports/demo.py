"""Demo history: a month or more of past tickets, published to Kafka as their events, so that a
local run's metrics (and its reports) have realistic figures to show.

The history goes the real way. Its `ticket.created` events reach routing, whose own triage
gives each ticket its category, team and due times (from the past creation time); once metrics
has that triage, the replies, resolutions, reopenings, closings and survey answers follow, with
their past times in the payload. The envelope's `occurred_at` is when each is published, after
routing's placement, so metrics' view ends with each ticket's last status. The other services
see the history too: notify e-mails the (example.com) learners into the local SMTP sink and
routing's SLA clocks warn about the past due times until the lifecycle arrives. Run it on a
fresh local stack, never a shared one.

The story improves over the range (faster answers, fewer reopenings, better scores), as a
service does when its improvement actions work: a monthly report shows what changed.
"""

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import msgspec

from services.metrics.settings import MetricsSettings
from shared.db import create_pool
from shared.events import (
    CallbackReason,
    CallbackRecorded,
    Channel,
    CloseReason,
    CourseScores,
    Envelope,
    EventData,
    Learner,
    LearnerContext,
    LearnerCourse,
    ReopenReason,
    SurveyAnswered,
    SurveyPeriodicAnswered,
    TicketClosed,
    TicketCreated,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    new_event,
)
from shared.kafka import ensure_topics, make_broker, outgoing, publish_confirmed

PRODUCER = "demo-history"
ZONE = ZoneInfo("Asia/Shanghai")

# (subject, description) per problem, zh and en, several per triage category: learners word
# the same problem alike, so the report's top problems cluster.
PROBLEMS: dict[str, list[tuple[str, str]]] = {
    "technical": [
        ("视频播放卡顿", "课程视频播放一分钟就卡住,换了浏览器也一样。"),
        ("App闪退", "打开App进入课程页面就闪退,手机已经重启过。"),
        ("直播课进不去", "点击直播课链接一直转圈,进不去教室。"),
        ("Video keeps buffering", "The lesson video stops every minute, on Chrome and Safari."),
    ],
    "account_security": [
        ("无法登录账号", "输入密码后提示账号或密码错误,但我确定密码是对的。"),
        ("收不到验证码", "手机收不到登录验证码,已经试了好几次。"),
        ("Cannot log in", "It says my password is wrong although I just reset it."),
    ],
    "payment_refund": [
        ("申请退款", "课程还没开始学习,想申请全额退款,请问流程是什么?"),
        ("重复扣费", "同一门课被扣了两次钱,请帮忙退回多扣的费用。"),
        ("发票开具", "请帮我开具上个月购买课程的电子发票。"),
        ("Refund request", "I bought the course by mistake and would like a refund."),
    ],
    "course_change": [
        ("调整上课时间", "工作时间变动,想把周三晚上的课调到周六上午。"),
        ("线下课改线上", "出差一个月,能否把线下课改为线上学习?"),
    ],
    "course_content": [
        ("课件无法下载", "第三章的课件下载链接失效了。"),
        ("课程内容有错误", "第五节视频里的例题答案和讲义不一致。"),
        ("Missing lesson material", "The slides for week 4 are not in the course page."),
    ],
    "learning_guidance": [
        ("学习计划咨询", "零基础,想请老师帮忙制定三个月的学习计划。"),
        ("作业不会做", "第二次作业的第三题不太理解,能否讲解一下思路?"),
    ],
    "exam_certificate": [
        ("考试报名咨询", "请问下个月的结业考试什么时候开始报名?"),
        ("证书没有收到", "考试已经通过两周了,还没有收到电子证书。"),
        (
            "Certificate not received",
            "I passed the exam two weeks ago but have no certificate yet.",
        ),
    ],
    "complaint": [
        ("投诉退款处理太慢", "申请退款已经两周了还没有处理,非常不满意,要求尽快解决。"),
        ("投诉老师态度差", "辅导老师回复敷衍,态度很差,我要投诉。"),
        (
            "Complaint about support",
            "Nobody answered my three e-mails about the refund. Unacceptable.",
        ),
    ],
    "suggestion": [
        ("建议增加倍速播放", "希望视频能支持2倍速播放。"),
    ],
}
# How often each problem kind comes, of a hundred tickets.
WEIGHTS = {
    "technical": 24,
    "account_security": 12,
    "payment_refund": 16,
    "course_change": 9,
    "course_content": 10,
    "learning_guidance": 10,
    "exam_certificate": 9,
    "complaint": 6,
    "suggestion": 4,
}
CHANNELS = {
    Channel.WEB: 25,
    Channel.WECHAT: 20,
    Channel.APP: 15,
    Channel.EMAIL: 15,
    Channel.HOTLINE: 10,
    Channel.CHAT: 8,
    Channel.WEIBO: 4,
    Channel.SUGGESTION_BOX: 3,
}
COURSES = ("PY-101", "PY-201", "DS-110", "IELTS-7", "CPA-2", "UI-100", "ENG-300")
AGENTS = ("alice", "bob", "chen", "dana", "eve", "fang")
# Learners by the hour they write (local time): mornings, afternoons and evenings after work.
HOURS = [1, 0, 0, 0, 0, 1, 2, 4, 7, 9, 9, 8, 5, 6, 8, 8, 7, 6, 6, 8, 9, 8, 5, 3]


@dataclass
class Story:
    """One past ticket: its creation and the later events, each at its own past time."""

    created: Envelope[Any]
    later: list[tuple[datetime, EventData]] = field(default_factory=list)


def _pick(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _hours(rng: random.Random, median: float, spread: float = 1.0) -> timedelta:
    return timedelta(hours=median * rng.lognormvariate(0, spread))


def stories(*, until: datetime, days: int, per_day: int, seed: int) -> list[Story]:
    """`days` of tickets before `until`, about `per_day` a day (fewer at weekends), with what
    happened to each by `until`."""
    rng = random.Random(seed)
    learners = [f"demo-{n:05d}" for n in range(max(100, per_day * 60))]
    first_day = (until.astimezone(ZONE) - timedelta(days=days)).date()
    found: list[Story] = []
    for d in range(days + 1):
        day = first_day + timedelta(days=d)
        progress = d / max(days, 1)  # 0 at the start, 1 today: the service improves
        count = round(per_day * (0.6 if day.weekday() >= 5 else 1.0) * rng.uniform(0.8, 1.2))
        for _ in range(count):
            hour = rng.choices(range(24), weights=HOURS)[0]
            at = datetime(day.year, day.month, day.day, hour, rng.randrange(60), tzinfo=ZONE)
            at = at.astimezone(UTC)
            if at >= until:
                continue
            # Most learners write once in a while; a few, stuck, write again and again.
            frequent = learners[: max(5, per_day // 2)]
            learner_id = rng.choice(frequent if rng.random() < 0.15 else learners)
            story = _story(rng, at=at, until=until, learner_id=learner_id, progress=progress)
            story.later.sort(key=lambda event: event[0])  # a survey may come after the close
            found.append(story)
    return found


def _story(
    rng: random.Random, *, at: datetime, until: datetime, learner_id: str, progress: float
) -> Story:
    kind = _pick(rng, WEIGHTS)
    english = [p for p in PROBLEMS[kind] if p[0].isascii()]
    chinese = [p for p in PROBLEMS[kind] if not p[0].isascii()]
    use_en = english and rng.random() < 0.25
    subject, description = rng.choice(english if use_en else chinese)
    channel = _pick(rng, CHANNELS)
    course = rng.choice(COURSES)
    vip = int(learner_id[-5:]) % 4 == 0
    ticket_id = uuid4()
    number = f"CL-8{rng.randrange(10**6):06d}"
    created = TicketCreated(
        ticket_id=ticket_id,
        number=number,
        channel=channel,
        source=PRODUCER,
        learner=Learner(
            name=f"Demo {learner_id[-5:]}",
            email=f"{learner_id}@example.com",
            learner_id=learner_id,
        ),
        subject=subject,
        description=description,
        course_id=course,
        language="en" if use_en else "zh",
        created_at=at,
        learner_context=LearnerContext(
            learner_id=learner_id,
            locale="en" if use_en else "zh",
            tier="vip" if vip else "standard",
            courses=(LearnerCourse(course_id=course, progress_pct=rng.uniform(0, 100)),),
            updated_at=at - timedelta(days=1),
        ),
    )
    story = Story(created=_dated(created, at))
    agent = rng.choice(AGENTS)
    # First answer: half an hour typically, quicker on the hotline, quicker as the range goes.
    median = (0.15 if channel is Channel.HOTLINE else 0.6) * (1.3 - 0.5 * progress)
    replied = at + _hours(rng, median, 1.1)
    if replied >= until:
        return story
    story.later.append(
        (
            replied,
            TicketReplied(
                ticket_id=ticket_id,
                number=number,
                reply_id=uuid4(),
                agent_id=agent,
                body="您好,我们已收到您的问题,正在处理。",
                first_response=True,
                created_at=at,
                replied_at=replied,
            ),
        )
    )
    if rng.random() > 0.86 + 0.10 * progress:  # some stay open: waiting on others
        return story
    resolved = replied + _hours(rng, 5 if kind != "complaint" else 20, 1.2)
    if resolved >= until:
        return story
    story.later.append((resolved, _resolved(ticket_id, number, agent, at, resolved)))
    if rng.random() < 0.12 - 0.08 * progress:  # not solved after all
        reopened = resolved + _hours(rng, 10)
        if reopened >= until:
            return story
        story.later.append(
            (
                reopened,
                TicketReopened(
                    ticket_id=ticket_id,
                    number=number,
                    reason=ReopenReason.NOT_SOLVED,
                    previous_agent_id=agent,
                    needs_supervisor=False,
                    reopened_at=reopened,
                ),
            )
        )
        resolved = reopened + _hours(rng, 8)
        if resolved >= until:
            return story
        story.later.append((resolved, _resolved(ticket_id, number, agent, at, resolved)))
    _answer(rng, story, ticket_id=ticket_id, resolved=resolved, until=until, progress=progress)
    confirmed = rng.random() < 0.6
    closed = resolved + (_hours(rng, 6) if confirmed else timedelta(days=3))
    if closed < until:
        reason = CloseReason.CONFIRMED if confirmed else CloseReason.AUTO_CLOSED
        story.later.append(
            (
                closed,
                TicketClosed(
                    ticket_id=ticket_id,
                    number=number,
                    reason=reason,
                    created_at=at,
                    closed_at=closed,
                ),
            )
        )
        _call_back(
            rng,
            story,
            ticket_id=ticket_id,
            number=number,
            closed=closed,
            until=until,
            complaint=kind == "complaint",
            agent=agent,
            progress=progress,
        )
    _periodic(
        rng, story, learner_id=learner_id, course=course, at=at, until=until, progress=progress
    )
    return story


def _call_back(
    rng: random.Random,
    story: Story,
    *,
    ticket_id: UUID,
    number: str,
    closed: datetime,
    until: datetime,
    complaint: bool,
    agent: str,
    progress: float,
) -> None:
    """Every closed complaint and one closed ticket in ten is phoned back a day or so later;
    three in four learners answer, most of them content."""
    called = closed + _hours(rng, 24)
    if not (complaint or rng.random() < 0.1) or called >= until:
        return
    reached = rng.random() < 0.75
    score = rng.choices((1, 2, 3, 4, 5), weights=(4, 6, 15, 35, 30 + 10 * progress))[0]
    story.later.append(
        (
            called,
            CallbackRecorded(
                ticket_id=ticket_id,
                number=number,
                reason=CallbackReason.COMPLAINT if complaint else CallbackReason.SAMPLE,
                reached=reached,
                score=score if reached else None,
                by=agent,
                recorded_at=called,
            ),
        )
    )


def _periodic(
    rng: random.Random,
    story: Story,
    *,
    learner_id: str,
    course: str,
    at: datetime,
    until: datetime,
    progress: float,
) -> None:
    """One learner in eight also answers the periodic survey, rating their course."""
    answered = at + _hours(rng, 48)
    if rng.random() > 0.125 or answered >= until:
        return

    def score(*weights: float) -> int:
        return rng.choices((1, 2, 3, 4, 5), weights=weights)[0]

    overall = score(4, 6, 16, 40, 34 + 10 * progress)
    story.later.append(
        (
            answered,
            SurveyPeriodicAnswered(
                survey_id=uuid4(),
                learner_id=learner_id,
                period=f"{answered.year}-{(answered.month - 1) // 3 * 3 + 1:02d}+3m",
                overall=overall,
                response_speed=score(4, 6, 20, 40, 30),
                problem_solving=score(4, 6, 20, 40, 30),
                attitude=score(2, 4, 14, 40, 40),
                courses=(
                    CourseScores(
                        course_id=course,
                        usefulness=score(3, 5, 20, 40, 32),
                        difficulty=score(5, 10, 30, 35, 20),
                        structure=score(3, 7, 25, 40, 25),
                    ),
                ),
                teacher_level=score(2, 4, 14, 40, 40),
                teaching_method=score(3, 6, 21, 40, 30),
                teaching_attitude=score(2, 3, 15, 40, 40),
                answered_at=answered,
            ),
        )
    )


def _resolved(
    ticket_id: UUID, number: str, agent: str, created: datetime, at: datetime
) -> TicketResolved:
    return TicketResolved(
        ticket_id=ticket_id,
        number=number,
        agent_id=agent,
        resolution="问题已处理,请确认。",
        confirm_url=f"http://127.0.0.1/tickets/{ticket_id}/confirm",
        created_at=created,
        resolved_at=at,
    )


def _answer(
    rng: random.Random,
    story: Story,
    *,
    ticket_id: UUID,
    resolved: datetime,
    until: datetime,
    progress: float,
) -> None:
    """About half the learners answer the survey; scores rise over the range."""
    answered = resolved + _hours(rng, 3)
    if rng.random() > 0.5 or answered >= until:
        return
    base = rng.choices(
        (1, 2, 3, 4, 5),
        weights=(5 - 3 * progress, 5 - 3 * progress, 10 - 6 * progress, 34, 46 + 14 * progress),
    )[0]

    def near() -> int:
        return max(1, min(5, base + rng.choice((-1, 0, 0, 0, 1))))

    story.later.append(
        (
            answered,
            SurveyAnswered(
                survey_id=uuid4(),
                ticket_id=ticket_id,
                overall=base,
                response_speed=near(),
                problem_solving=near(),
                attitude=near(),
                answered_at=answered,
            ),
        )
    )


def _dated(data: EventData, at: datetime) -> Envelope[Any]:
    return msgspec.structs.replace(new_event(data, producer=PRODUCER), occurred_at=at)


async def publish_history(*, days: int, per_day: int, seed: int, wait_seconds: float = 300) -> int:
    """Publish the history to the local run: creations first; once metrics has routing's
    triage of them (at most `wait_seconds`), everything after, oldest first. Returns how many
    events went."""
    settings = MetricsSettings()
    history = stories(until=datetime.now(UTC), days=days, per_day=per_day, seed=seed)
    await ensure_topics(settings)
    broker = make_broker(settings, client_id=PRODUCER)
    await broker.start()
    try:
        created = [s.created for s in history]
        for chunk in _chunks(created, 500):
            await publish_confirmed(broker, [outgoing(e) for e in chunk])
        print(f"{len(created)} tickets created; waiting for routing's triage to reach metrics")
        await _wait_for_triage(settings, [e.data.ticket_id for e in created], wait_seconds)
        later = sorted((p for s in history for p in s.later), key=lambda event: event[0])
        events = [new_event(data, producer=PRODUCER) for _, data in later]
        for chunk in _chunks(events, 500):
            await publish_confirmed(broker, [outgoing(e) for e in chunk])
        return len(created) + len(events)
    finally:
        await broker.stop()


async def _wait_for_triage(settings: MetricsSettings, ids: list[UUID], seconds: float) -> None:
    dsn = settings.for_service("metrics").pg_dsn.get_secret_value()
    pool = await create_pool(dsn, schema="metrics", max_size=1)
    deadline = time.monotonic() + seconds
    try:
        while True:
            triaged = await pool.fetchval(
                "SELECT count(*) FROM tickets WHERE ticket_id = ANY($1::uuid[]) "
                "AND category IS NOT NULL",
                ids,
            )
            if triaged >= len(ids):
                return
            if time.monotonic() > deadline:
                print(f"only {triaged} of {len(ids)} triaged after {seconds:.0f} s; going on")
                return
            await asyncio.sleep(2)
    finally:
        await pool.close()


def _chunks(items: Sequence[Envelope[Any]], size: int) -> list[Sequence[Envelope[Any]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
