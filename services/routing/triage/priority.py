"""Priority: what the text says (the learned urgency model), then a table of policy rules over
the category, the time to the learner's next class or exam, and the learner's tier (R3.2)."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import re2

from shared.events import Category, LearnerContext, Priority

SOON = 120  # minutes: a blocked class or exam this close makes a ticket urgent
TODAY = 1440  # minutes: this close, at least high

_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2, Priority.URGENT: 3}
_BY_RANK = {r: p for p, r in _RANK.items()}


@dataclass(frozen=True, slots=True)
class Situation:
    """What the rules weigh for one ticket."""

    category: Category
    said: Priority  # what the text alone says (learned: live compromise, a class in minutes...)
    soon: int | None  # minutes to the next class or exam (context or text); None: none known
    blocks: bool = True  # the problem keeps the learner from that class or exam (learned)
    vip: bool = False
    live_p: float = 0.0  # how probable the category model finds the account or money


@dataclass(frozen=True, slots=True)
class Rule:
    """When `applies`, the priority becomes at least `floor` (or exactly it, when `exact`)."""

    name: str
    applies: Callable[[Situation], bool]
    floor: Priority
    exact: bool = False


def _blocks(s: Situation) -> bool:
    """The problem keeps the learner from the class or exam, as the blocking model judges. A
    request for study advice ("exam in an hour, any last tips?") blocks nothing, whatever the
    model thinks: the learner can attend without the answer. Anything else may: an admission
    ticket left at the centre an hour before the exam keeps the learner out as surely as a
    classroom that won't load (until corpus5 `other` never blocked; its writers label such
    tickets urgent, as the rule "blocks attending it" says). A question's phrasing does not
    count against it: "any way to get into the room? my class is in 50 min" is blocked."""
    return s.blocks and s.category is not Category.LEARNING_GUIDANCE


# The rules make a ticket urgent by its text alone for a live compromise of the account or of
# money only; anything else is urgent when it blocks a class or exam within 2 h.
LIVE_COMPROMISE = (Category.ACCOUNT_SECURITY, Category.PAYMENT_REFUND)
# A text the urgency model calls a live compromise stays urgent when the category model gives
# the account or money at least this much, though it names another category first ("一直收到不是我
# 申请的登录验证码" read as technical, "我刚把验证码告诉了假客服 然后被踢下线了" as a complaint): the
# compromise is what matters first (on the 5,191-example corpus: 2 more urgent tickets found
# on the held-out split and 3 more in the cross-validation, for 1 and 3 false alarms).
LIVE_AT = 0.2


# In order; the first exact rule that applies ends the table, floors accumulate.
RULES: tuple[Rule, ...] = (
    Rule("suggestions are low", lambda s: s.category is Category.SUGGESTION, Priority.LOW, True),
    Rule(
        "blocks a class or exam within 2 h",
        lambda s: s.soon is not None and s.soon <= SOON and _blocks(s),
        Priority.URGENT,
    ),
    Rule(
        "blocks a class or exam within 24 h",
        lambda s: s.soon is not None and s.soon <= TODAY and _blocks(s),
        Priority.HIGH,
    ),
    Rule("complaints are at least high", lambda s: s.category is Category.COMPLAINT, Priority.HIGH),
)


def decide(s: Situation) -> tuple[Priority, str]:
    """The priority of `s` and the rule that set it ("text" when the text's own level stood)."""
    level, why = s.said, "text"
    if level is Priority.URGENT and s.category not in LIVE_COMPROMISE:
        if s.live_p >= LIVE_AT:
            why = "text says a live compromise, and account or money is likely enough"
        else:
            level, why = Priority.HIGH, "text pressing, but no live compromise of account or money"
    for rule in RULES:
        if not rule.applies(s):
            continue
        if rule.exact:
            level, why = rule.floor, rule.name
            break
        if _RANK[rule.floor] > _RANK[level]:
            level, why = rule.floor, rule.name
    if s.vip and level in (Priority.LOW, Priority.MEDIUM):
        # VIP raises one step, up to high at most: never to urgent by tier alone.
        level, why = _BY_RANK[_RANK[level] + 1], f"{why}; VIP one step up"
    return level, why


def text_level(
    category: Category, priority: Priority, *, vip: bool, soon: int | None
) -> Priority | None:
    """What a labelled example's text alone says of its priority, for training the urgency
    model: the label without the VIP step, and only where no class or exam within 24 h may
    have raised it (None: unknown; a VIP's high that is no complaint may be a raised medium).
    Suggestions are left out: the rule table sets them."""
    if category is Category.SUGGESTION or (soon is not None and soon <= TODAY):
        return None
    if not vip or priority is Priority.URGENT:
        return priority
    if priority is Priority.MEDIUM:
        return Priority.LOW
    if priority is Priority.HIGH and category is Category.COMPLAINT:
        return Priority.HIGH
    return None


def blocked(category: Category, priority: Priority, *, vip: bool, soon: int | None) -> bool | None:
    """Whether a labelled example's problem blocks the class or exam it has within 24 h, for
    training the blocking model: within 2 h its label is urgent exactly when it does; within
    24 h at least high (a complaint or a VIP is high anyway, so theirs tells nothing)."""
    if soon is None or soon > TODAY or category is Category.SUGGESTION:
        return None
    if soon <= SOON:
        return priority is Priority.URGENT
    if category is Category.COMPLAINT or vip:
        return None
    return priority in (Priority.HIGH, Priority.URGENT)


def minutes_to_next(context: LearnerContext | None, at: datetime) -> int | None:
    """Minutes from `at` to the learner's next class or exam; one that began up to an hour ago
    counts as now (a learner locked out of a running class)."""
    if context is None:
        return None
    times = [c.next_class_at for c in context.courses if c.next_class_at is not None]
    times += [e.at for e in context.exams]
    ahead = [(t - at).total_seconds() / 60 for t in times]
    ahead = [m for m in ahead if m >= -60]
    return max(0, int(min(ahead))) if ahead else None


# ---- time phrases in the text --------------------------------------------------------------

_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7}
_ZH_DIGITS |= {"八": 8, "九": 9, "十": 10, "半": 0}


def _number(word: str) -> float:
    """An English or Chinese count: "20", "an", "half an", "十五", "一个半", "两"."""
    w = word.strip().replace("个", "")
    if w.replace(".", "", 1).isdigit():
        return float(w)
    if w in ("a", "an", "one"):
        return 1
    if w in ("half a", "half an", "半"):
        return 0.5
    words = {"two": 2, "three": 3, "four": 4, "five": 5, "ten": 10, "fifteen": 15}
    words |= {"twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45, "few": 3, "couple": 2}
    if w in words:
        return words[w]
    half = 0.5 if w.endswith("半") else 0.0
    w = w.removesuffix("半")
    if not w:
        return half
    if "十" in w:  # 十, 十五, 二十, 四十五
        tens, _, units = w.partition("十")
        return (_ZH_DIGITS.get(tens, 1) if tens else 1) * 10 + (_ZH_DIGITS.get(units, 0)) + half
    return sum(_ZH_DIGITS.get(c, 0) for c in w) + half


_COUNT_EN = r"(\d+(?:\.\d+)?|an?|one|two|three|four|five|ten|fifteen|twenty|thirty|forty(?:-five)?|half an?|a few|few|a couple of|couple of)"
_COUNT_ZH = r"(\d+(?:\.\d+)?|[零一二两三四五六七八九十]+个?半?|半)"
_UNIT_MIN = {"min": 1, "minute": 1, "hour": 60, "hr": 60, "h": 60, "day": 1440}

# (pattern, minutes from its match); Chinese first, then English.
_PHRASES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], float]], ...] = (
    (
        re.compile(_COUNT_ZH + r"\s*(分钟|个?小时|个?钟头?|天)\s*(后|以后|之后|就|不到)"),
        lambda m: _number(m[1]) * {"分": 1, "天": 1440}.get(m[2][0], 60),
    ),
    (
        re.compile(
            r"(还有|不到)\s*(?:约|大约|大概|差不多)?\s*" + _COUNT_ZH + r"\s*(分钟|个?小时|天)"
        ),
        lambda m: _number(m[2]) * {"分": 1, "天": 1440}.get(m[3][0], 60),
    ),
    (re.compile(r"(?<![个一二两三四五六七八九十\d])半个?(小时|钟)"), lambda m: 30),
    (
        re.compile(
            r"马上就?要?(上课|考试|开始|开课)|快(上课|考试|开始)了|已经(上课|开课|开考|开始)了|正在上课|课已经开始"
        ),
        lambda m: 0,
    ),
    (re.compile(r"今[晚天早日]|今儿"), lambda m: 600),
    (re.compile(r"明[天早晚]"), lambda m: TODAY),
    (
        re.compile(
            r"\bin (?:about |around |~)?"
            + _COUNT_EN
            + r" ?(min|minute|hour|hr|h|day)s?( and a half)?\b"
        ),
        lambda m: (
            (_number(m[1].replace(" of", "").removeprefix("a ")) + (0.5 if m[3] else 0))
            * _UNIT_MIN[m[2]]
        ),
    ),
    (
        re.compile(_COUNT_EN + r" ?(min|minute|hour|hr|h)s? (?:from now|left|away|to go)\b"),
        lambda m: _number(m[1].removeprefix("a ")) * _UNIT_MIN[m[2]],
    ),
    (
        re.compile(
            r"\b(starts now|starting now|has started|already started|just started|is starting"
            r"|about to start|started \d+ ?min|going on now|right now)\b"
            # "a class that already started last week" began long ago: a course, not a class now
            r"(?! (?:last|a|\d+|two|three|few|several) (?:week|month|term|day|year)s?\b| yesterday)"
        ),
        lambda m: 0,
    ),
    (re.compile(r"\b(today|tonight|this (morning|afternoon|evening))\b"), lambda m: 600),
    (re.compile(r"\btomorrow\b"), lambda m: TODAY),
)

# A class, lesson or exam must be near the time phrase for it to count ("pay tomorrow" is no
# class tomorrow). A numbered lesson ("第三课", "切到后面一课") is a unit of a recorded course, not
# a class on the timetable.
_EVENT = re.compile(
    r"上课|(?<![一二三四五六七八九十\d])课|考试|考|直播|开课|测验|模考"
    r"|class|lesson|lecture|session|exam|test|quiz"
)
_CALM = re.compile(
    r"不急|不着急|不赶时间|没那么急|有空再|不用马上回|不急着回|先不说这个|"
    r"不影响(上课|考试|今天|今晚)|不耽误|(跟|和)这个没关系|与此无关|"
    r"(考完试?|上完课|下课|考试后)再说|(下个月|下学期|下周)(开始|起)|"
    r"不是为(了)?(这个|上课|考试)|(跟|和|与)(上课|考试)(没|无)关|"
    r"no rush|not urgent|no hurry|whenever (you|convenient)|no need to reply now|"
    r"no problem there|(does ?n[o']t|won'?t|will not|not) (affect|block|stop) (my |the |me )|"
    r"(not related|unrelated) to (the |my |today)|from next (term|month|semester|week)|"
    r"\bunrelated\b|not why i'?m (writing|asking|messaging)|about something else|"
    r"question for (later|afterwards)|"
    # the class or exam itself is fine: "class in 30 mins, all good!", "20分钟后的课没问题"
    r"\b(all good|all set|nothing wrong|that'?s fine|(is|are|seems?) unaffected|"
    r"attend (it )?normally|i'?ll (still )?be there|not a problem with the (class|exam)|"
    r"is ?n[o']t about today|(works|working) fine|no biggie|not about (that|it|today|the (class|exam))"
    r"|(class|exam|lesson|test)[^.!?\n]{0,20} (is|are) (fine|ok|okay|not affected)"
    r"|just so (you|the teacher|they) knows?)\b|顺利进入|"
    r"(课(?!程)|考试|考场|准考证|资料)[^。！？!?\n，,]{0,4}(都|也)?(没问题|没啥问题|没有问题|没事|正常|照常|齐)"
    r"(?![吗吧？?])|(正常|照常)(上课?|参加|考)|不是今天的|不是说今天"
)


# A place just before a time is a distance, not a time: "moved to a centre 1.5 hours away".
_PLACE_BEFORE = re.compile(
    r"\b(centre|center|campus|branch|school|office|drive|ride|walk|commute|trip)"
    r"\s+(?:(?:that|which)\s+is\s+|is\s+)?$"
)
# A span that passed or repeats is no time ahead: "等了半小时", "迟到了二十分钟", "每隔两分钟就掉线"
# ("过半小时就上课" is ahead, "过了半小时" is not).
_SPAN_BEFORE = re.compile(r"(?:等了|过了|迟到了?|晚了|每隔|每|忘了|花了|用了|持续了?)\s*$")


def no_hurry(text: str) -> bool:
    """The (normalised) text says its problem blocks nothing now ("不急", "doesn't affect my
    class"): a class soon, in the text or the learner's calendar, then counts for nothing."""
    return _CALM.search(text) is not None


def minutes_in_text(text: str, at: datetime | None = None) -> tuple[int | None, str | None]:
    """The soonest class or exam the (normalised) text speaks of, in minutes, and the phrase
    that said so; nothing when the text says there is no hurry. With `at` (when the ticket was
    written), a clock time today ("今晚七点的课", "class at 7:30pm") counts from then."""
    return (None, None) if no_hurry(text) else minutes_said(text, at)


def minutes_said(text: str, at: datetime | None = None) -> tuple[int | None, str | None]:
    """`minutes_in_text` for a text already known to say nothing of no hurry."""
    best: tuple[int | None, str | None] = (None, None)
    for pattern, minutes in _PHRASES:
        for m in pattern.finditer(text):
            near = text[max(0, m.start() - 30) : m.end() + 30]
            before = text[: m.start()]
            if (
                not _EVENT.search(near)
                or _PLACE_BEFORE.search(before)
                or _SPAN_BEFORE.search(before)
            ):
                continue
            value = int(minutes(m))
            if best[0] is None or value < best[0]:
                best = (value, m[0])
    if at is not None:
        for m, value in _clock_times(text, at):
            near = text[max(0, m.start() - 30) : m.end() + 30]
            if _EVENT.search(near) and (best[0] is None or value < best[0]):
                best = (value, m[0])
    return best


BEIJING = ZoneInfo("Asia/Shanghai")

_CLOCK_ZH = re.compile(
    r"(今晚|今天晚上|今天下午|今天上午|今早|今天|晚上|下午|上午)\s*"
    r"(\d{1,2}|[一二两三四五六七八九十]{1,3})\s*(?:[点:：](半|\d{2})?)"
)
_CLOCK_EN = re.compile(r"\b(?:at |@ ?)?(\d{1,2})(?::(\d{2}))? ?(am|pm)\b|\b(\d{1,2}):(\d{2})\b")


def _clock_times(text: str, at: datetime) -> list[tuple[re.Match[str], int]]:
    """Clock times in the text, as minutes from `at` to that time today in Beijing (a time
    up to an hour past counts as now; one longer past is another day's and counts for
    nothing)."""
    local = at.astimezone(BEIJING)
    found = []
    for m in _CLOCK_ZH.finditer(text):
        hour = int(m[2]) if m[2].isdigit() else int(_number(m[2]))
        if m[1] in ("今晚", "今天晚上", "今天下午", "晚上", "下午") and hour < 12:
            hour += 12
        minute = 30 if m[3] == "半" else int(m[3] or 0)
        found.append((m, hour, minute))
    for m in _CLOCK_EN.finditer(text):
        if m[1]:
            hour, minute = int(m[1]) % 12 + (12 if m[3] == "pm" else 0), int(m[2] or 0)
        else:
            hour, minute = int(m[4]), int(m[5])
        found.append((m, hour, minute))
    out = []
    for m, hour, minute in found:
        if hour > 23 or minute > 59:
            continue
        ahead = local.replace(hour=hour, minute=minute, second=0, microsecond=0) - local
        minutes = ahead.total_seconds() / 60
        if minutes >= -60:
            out.append((m, max(0, int(minutes))))
    return out


# ---- how the trouble stands ------------------------------------------------------------------

# Cues the urgency model reads besides the words: whether the trouble is over or still going on.
# "a login from Brazil 2 weeks ago, I changed my password that day" is a past compromise
# (medium); "someone in Russia is logged in as me at this moment" a live one (urgent). Each cue
# pools the many ways of saying one thing, which the n-grams learn only one phrasing at a time
# (on the 10,212-example corpus's cross-validation: urgent precision 90.0 % -> 92.6 % at 95 %
# recall). A cue is a hint the model weighs, not a rule. The cues are matched together in one
# pass by RE2 (a tenth of the CPU of Python's re, one pattern after another; the same answers
# on every corpus text); its \b is ASCII's, so a cue word next to a Chinese character counts.
_CUES: tuple[tuple[str, str], ...] = (
    (  # it happened a while ago
        "past",
        r"\b(?:last (?:week|month|year|spring|summer|term|night|time)|(?:\d+|two|three|four"
        r"|few|several|couple of) (?:days?|weeks?|months?) ago|a (?:week|month) ago|yesterday"
        r"|the other day|back then|at the time)\b|上周|上个?月|上星期|前天|昨天|昨晚|当时|那时"
        r"|去年|上学期|[一二两三四五六七八九十几\d]+(?:天|周|个月|个星期)(?:前|以前|之前)",
    ),
    (  # it is fixed or in hand
        "done",
        r"\b(?:already (?:changed|reset|logged|removed|fixed|sorted)|(?:i|i'?ve|i have|we|he"
        r"|she|caller|learner) (?:has |have )?(?:already |then |immediately |right away )?"
        r"(?:changed|reset) (?:my |his |her |the )?password|sorted (?:now|out)|resolved"
        r"|restored|got it back|recovered|reset it back|frozen by (?:my|his|her) bank"
        r"|(?:logged|signed) (?:it|them) out|removed (?:it|the device))\b"
        # "密码已修改" is the notice of a change, not the learner's fix
        r"|(?:^|[^码])已经?(?:修改|改了?|换了?|重置|找回|处理|解决|冻结|登出|退出|踢)|我(?:已经|马上|立刻|当时)?"
        r"(?:就)?(?:改|换|修改|重置)了密码|密码(?:已经|我)(?:改|换)了|踢掉了|(?:改回来|找回来)了",
    ),
    (  # nothing since, all looks normal
        "calm",
        r"\b(?:nothing (?:new |else |has happened |happened )?since|no (?:further|new|other)"
        r" (?:activity|logins?|charges?)|no sign|(?:looks|seems|is) (?:normal|fine|ok(?:ay)?)"
        r"|everything (?:looks |seems |is )?(?:normal|fine|ok)|can (?:still )?log in fine"
        r"|logged in fine|just (?:reporting|fyi|checking|asking|curious)|fyi|nothing (?:was )?"
        r"(?:bought|changed|missing))\b|没(?:什么|啥)(?:异常|动静|变化)|没别的动静|一切正常"
        r"|还能正常登录|能正常登录|暂时没|目前(?:平台)?(?:账号)?正常|没有异常|没发现异常|先来问问"
        r"|要紧吗",
    ),
    (  # going on now
        "now",
        r"\b(?:right now|rn|at this moment|as we speak|during the call|currently|in progress"
        r"|still (?:going|happening|logged|online|on the (?:phone|line)|being|charging|using"
        r"|there|in)|is still|keeps? (?:charging|coming|happening|taking|trying|logging)"
        r"|again and again|every (?:minute|few minutes)|so far|going down)\b|正在|还在|一直在"
        r"|不停|又扣|刚刚?又|已经第.{1,3}[笔次个]|第.{1,3}[笔次]了|一(?:笔|条)一(?:笔|条)"
        r"|现在还|现在在线|在线的|转到一半|这会儿|此刻",
    ),
    (  # locked out now
        "locked",
        r"\b(?:(?:can'?t|cannot|can not|unable to|not able to) (?:log ?in|sign ?in|enter"
        r"|get in|access|login)|locked out|password (?:is )?wrong|kicked (?:me )?out"
        r"|logged me out)\b|登不上|登录不了|登不进|进不去|上不去|被踢(?:下线|出)|密码错误"
        r"|deng ?bu ?shang",
    ),
    (  # gave a stranger the keys
        "handed",
        r"\b(?:gave|told|sent|typed|entered|read out|shared) (?:\w+ ){0,4}(?:card|cvv|otp"
        r"|code|password|pin)|(?:card|cvv|otp|code|password) (?:\w+ ){0,3}(?:to (?:him|her"
        r"|them|the (?:guy|man|caller))|into (?:a|the|that) (?:page|site|link))\b|(?:给|告诉|"
        r"报)了?(?:他|她|对方|骗子|假客服)|输了(?:账号|密码|卡号|银行卡)|屏幕共享|安全账户",
    ),
    (  # no harm done: it was the learner, or they did not take the bait
        "unharmed",
        r"\b(?:not (?:been )?hacked|not a hack(?:er)?|it'?s (?:just )?me|it was (?:just )?me"
        r"|my own fault|no ?one else|nobody else|did ?n[o']t (?:click|give|type|enter|share"
        r"|send|tell|reply)|never (?:clicked|gave|replied))\b|不是被盗|没(?:有)?被盗|是我自己"
        r"|我(?:没|还没|并没有?)(?:给|点|发|输|告诉|回|答应)|没点(?:链接)?|没有点",
    ),
    (  # the password, e-mail or phone changed, and not by the learner
        "unasked",
        r"\b(?:(?:password|pw|e-?mail|phone(?: number)?)s? (?:\w+ ){0,2}(?:got |was |has been )?"
        r"(?:changed|reset) (?:by itself|on its own|without me)|(?:did ?n[o']t|never) (?:change|reset)"
        r" (?:it|that|my (?:password|pw|e-?mail|phone))|(?:was ?n[o']t|not) me who|(?:changed|reset)"
        r" by someone|(?:someone|somebody|a stranger|(?:the )?hackers?) (?:has |had |have )?"
        r"(?:changed|reset))\b|(?:密码|邮箱|手机号?|绑定|password|e-?mail)[^。!?\n]{0,8}(?:被人?改|被换"
        r"|被重置|换成)|(?:没|没有|从来没)(?:改过|改|重置过?|换过)(?:密码|邮箱|手机)|不是我改的|自己变了"
        r"|莫名其妙被?改",
    ),
    (  # someone else's account, or how to prevent it
        "hypothetical",
        r"\b(?:how (?:do|can|to|should)|should i|can i (?:get|set|turn on|enable)"
        r"|is there a way|what are the|in case|just wondering|prevent|to be safe"
        r"|my friend'?s)\b|怎么(?:设置|开启|防止|避免)|如何|要不要|会不会|防止|预防|以防|万一"
        r"|朋友的账号|同学的账号|有没有办法",
    ),
)
STANDING = tuple(name for name, _ in _CUES)
_ANY_CUE = re2.Set.SearchSet(re2.Options())
for _, pattern in _CUES:
    _ANY_CUE.Add(pattern)
_ANY_CUE.Compile()


def standing(text: str) -> list[bool]:
    """Which of the STANDING cues the (normalised) text gives, in their order."""
    given = set(_ANY_CUE.Match(text) or ())
    return [i in given for i in range(len(STANDING))]
