"""The board's skills-and-schedule form: read as routing's admin API would take it, refused
with the reason where routing would refuse it, and shown back as posted."""

import pytest

from services.desk.web import skills
from services.desk.web.text import TEXT
from shared.events import AgentSkills, WeeklyHours

ZH = TEXT["zh"]["skills_page"]
EN = TEXT["en"]["skills_page"]
SENIOR = AgentSkills(
    languages=("zh",),
    categories=("payment_refund", "complaint"),
    channels=("wechat",),
    course_lines=("PY", "JA"),
    priorities=("urgent",),
    vip=True,
    senior=True,
    schedule=WeeklyHours(
        timezone="Asia/Shanghai",
        weekly={"mon": (("09:00", "12:00"), ("13:00", "18:00")), "sat": (("20:00", "24:00"),)},
    ),
)


def test_a_form_posted_unchanged_is_the_skills_it_showed() -> None:
    form = skills.as_form(SENIOR)
    assert form["day-mon"] == "09:00-12:00, 13:00-18:00"
    assert form["schedule"] == "weekly" and form["day-tue"] == ""
    assert skills.read(form, ZH) == SENIOR
    anyone = AgentSkills(languages=("zh", "en"))
    assert skills.as_form(anyone)["schedule"] == "always"
    assert skills.read(skills.as_form(anyone), ZH) == anyone


def test_what_people_type_is_read_leniently_where_it_is_unambiguous() -> None:
    form = {
        "language-en": "on",
        "course_lines": "py，ja_n2  MATH",
        "schedule": "weekly",
        "timezone": " Europe/London ",
        "day-mon": "9:00 - 17:30；18:00–24:00",
    }
    read = skills.read(form, EN)
    assert read.course_lines == ("PY", "JA_N2", "MATH")
    assert read.schedule == WeeklyHours(
        timezone="Europe/London", weekly={"mon": (("09:00", "17:30"), ("18:00", "24:00"))}
    )
    # "Always on shift" ignores the hours typed below it.
    assert skills.read({**form, "schedule": "always"}, EN).schedule is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"language-zh": ""}, "Choose at least one language."),
        ({"day-tue": "9-18"}, "Tuesday: “9-18” is not a span HH:MM-HH:MM."),
        ({"day-tue": "18:00-09:00"}, "tue: 18:00-09:00 does not end after it starts"),
        ({"day-tue": "09:00-25:00"}, "schedule.weekly.tue"),
        ({"timezone": "Asia/Peking"}, "unknown timezone: Asia/Peking"),
        ({"course_lines": "PY-101!"}, "course_lines.0"),
    ],
)
def test_what_routing_would_refuse_is_refused_with_the_reason(
    fields: dict[str, str], message: str
) -> None:
    form = {**skills.as_form(SENIOR), **fields}
    with pytest.raises(skills.SkillsRefused) as refused:
        skills.read(form, EN)
    assert message in refused.value.message


def test_the_refusal_is_in_the_pages_language() -> None:
    with pytest.raises(skills.SkillsRefused) as refused:
        skills.read({**skills.as_form(SENIOR), "day-sun": "全天"}, ZH)
    assert refused.value.message == "周日：“全天”不是 HH:MM-HH:MM 格式的时段。"
