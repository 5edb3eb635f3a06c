"""The triage models on a small hand-written corpus: reading it, the split, training, the
stored artifact, the shape of a batch's triage, and determinism."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.linear_model import RidgeClassifier
from sklearn.naive_bayes import ComplementNB

from services.routing.triage import Situation, Ticket, Triager, corpus
from services.routing.triage.model import (
    CUES,
    NAIVE_BAYES_ALPHA,
    NAIVE_BAYES_WEIGHT,
    RIDGE_ALPHA,
    RIDGE_TEMPERATURE,
    RIDGE_WEIGHT,
    Blend,
    Features,
    Sample,
    _classifier,
    _latin,
    _subject,
    denied,
    normal,
    sounds,
    zh_words,
)
from services.routing.triage.store import TriageSettings, artifact_path, build, load_or_train, train
from shared.events import Category, LearnerContext, LearnerCourse, Priority


def ex(n: int, category: str, priority: str, language: str, text: str, **context: object) -> dict:
    return {
        "id": f"fixture-{n:03d}",
        "channel": "chat",
        "language": language,
        "subject": "",
        "description": text,
        "context": {"tier": "standard", "next_class_in_minutes": None, "next_exam_in_minutes": None}
        | context,
        "category": category,
        "priority": priority,
        "reason": "fixture",
    }


FIXTURE = [
    ex(1, "technical", "medium", "zh", "视频一直卡顿，播放不了"),
    ex(2, "technical", "medium", "zh", "App 打开就闪退，重装也没用"),
    ex(3, "technical", "medium", "en", "The video keeps buffering and never plays"),
    ex(4, "technical", "urgent", "en", "Can't get into the classroom, class starts in 10 minutes"),
    ex(5, "account_security", "urgent", "zh", "我的账号被盗了，密码被人改了"),
    ex(6, "account_security", "urgent", "en", "Someone hacked my account and changed my password"),
    ex(7, "account_security", "low", "en", "How do I turn on two-factor authentication?"),
    ex(8, "account_security", "low", "zh", "怎么开启登录保护，防止账号被盗"),
    ex(9, "payment_refund", "medium", "zh", "我想申请退款，买错课程了"),
    ex(10, "payment_refund", "medium", "zh", "重复扣费了两次，请退回一笔"),
    ex(11, "payment_refund", "medium", "en", "I was charged twice for the same course"),
    ex(12, "payment_refund", "medium", "en", "Please send me an invoice for my payment"),
    ex(13, "course_content", "medium", "zh", "第三章课件答案错了"),
    ex(14, "course_content", "medium", "zh", "讲义里有好几个错别字"),
    ex(15, "course_content", "medium", "en", "The answer key for unit 3 is wrong"),
    ex(16, "course_content", "medium", "en", "There is a typo in the slides of lesson 5"),
    ex(17, "course_change", "medium", "zh", "下周的课能调到周五吗"),
    ex(18, "course_change", "medium", "zh", "想换个老师，换到晚上的班"),
    ex(19, "course_change", "medium", "en", "Can I reschedule next week's lesson to Friday?"),
    ex(20, "course_change", "medium", "en", "I'd like to switch to the evening class"),
    ex(21, "learning_guidance", "medium", "zh", "怎么制定学习计划，背单词总是记不住"),
    ex(22, "learning_guidance", "medium", "zh", "作业不会做，能辅导一下吗"),
    ex(23, "learning_guidance", "medium", "en", "What study plan do you recommend for IELTS?"),
    ex(24, "learning_guidance", "medium", "en", "Which course should I take after level 2?"),
    ex(25, "exam_certificate", "medium", "zh", "证书还没收到，结课一个月了"),
    ex(26, "exam_certificate", "medium", "zh", "考试成绩什么时候出来"),
    ex(27, "exam_certificate", "medium", "en", "My certificate has the wrong name on it"),
    ex(28, "exam_certificate", "low", "en", "How do I register for the next exam?"),
    ex(29, "complaint", "high", "zh", "老师态度太差了，我要投诉"),
    ex(30, "complaint", "high", "zh", "客服一直不回复，太失望了，要求赔偿"),
    ex(31, "complaint", "high", "en", "Your teacher was rude, I want a refund for that lesson"),
    ex(32, "complaint", "high", "en", "Terrible service, third time I ask and nobody answers"),
    ex(33, "suggestion", "low", "zh", "建议增加夜间模式"),
    ex(34, "suggestion", "low", "zh", "希望可以倍速播放"),
    ex(35, "suggestion", "low", "en", "It would be nice to have a dark mode"),
    ex(36, "suggestion", "low", "en", "Please add subtitles download, great idea for commuters"),
    ex(37, "other", "low", "zh", "你们公司招聘兼职吗"),
    ex(38, "other", "low", "zh", "你好"),
    ex(39, "other", "low", "en", "Do you have any partnership programme for schools?"),
    ex(40, "other", "low", "en", "I left my umbrella at the Haidian centre"),
    ex(41, "technical", "urgent", "zh", "摄像头打不开，进不了教室", next_class_in_minutes=30),
    ex(
        42, "course_content", "medium", "en", "Typo in last week's slides", next_class_in_minutes=30
    ),
    ex(
        43,
        "technical",
        "high",
        "en",
        "The classroom won't load on my laptop",
        next_class_in_minutes=600,
    ),
    ex(44, "payment_refund", "medium", "zh", "发票抬头开错了", next_class_in_minutes=600),
]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    lines = [json.dumps(e, ensure_ascii=False) for e in FIXTURE]
    (d / "fixture-a.jsonl").write_text("\n".join(lines[:20]) + "\n", encoding="utf-8")
    (d / "fixture-b.jsonl").write_text("\n".join(lines[20:]) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def examples(corpus_dir: Path) -> list[corpus.Example]:
    return corpus.read(corpus.files(corpus_dir))


@pytest.fixture(scope="module")
def triager(examples: list[corpus.Example]) -> Triager:
    return Triager(train(examples), "fixture")


def test_the_corpus_reads_every_example_sorted_by_id(examples: list[corpus.Example]) -> None:
    assert [e.id for e in examples] == [f"fixture-{n:03d}" for n in range(1, 45)]
    assert examples[3].category is Category.TECHNICAL and examples[3].priority is Priority.URGENT


def test_a_bad_line_is_an_error_naming_its_file_and_line(tmp_path: Path) -> None:
    bad = dict(FIXTURE[0], category="billing")
    (tmp_path / "x.jsonl").write_text(
        json.dumps(FIXTURE[1]) + "\n" + json.dumps(bad) + "\n", encoding="utf-8"
    )

    with pytest.raises(ValueError, match=r"x\.jsonl:2: .*billing"):
        corpus.read(corpus.files(tmp_path))


def test_the_digest_changes_with_any_byte_of_the_corpus(corpus_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "fixture-a.jsonl"
    copy.write_bytes((corpus_dir / "fixture-a.jsonl").read_bytes())
    before = corpus.digest([copy])
    copy.write_bytes(copy.read_bytes().replace("卡顿".encode(), "卡住".encode()))

    assert corpus.digest([copy]) != before


@pytest.fixture
def more(examples: list[corpus.Example]) -> list[corpus.Example]:
    """10 examples per category and language."""
    return [replace(e, id=f"{e.id}-{i}") for i, e in enumerate(examples[:40] * 5)]


def test_the_held_out_split_takes_a_fifth_of_every_category_and_language(
    more: list[corpus.Example],
) -> None:
    train_set, held = corpus.split(more)

    assert len(held) == 40 and len(train_set) == 160
    assert {(e.category, e.language) for e in held} == {(e.category, e.language) for e in more}
    assert not {e.id for e in held} & {e.id for e in train_set}
    assert corpus.split(more) == (train_set, held)


def test_relabelling_an_example_moves_no_other_across_the_split(
    more: list[corpus.Example],
) -> None:
    _, held = corpus.split(more)
    moved = next(e for e in more if e.category == Category.TECHNICAL)
    relabelled = [replace(e, category=Category.OTHER) if e is moved else e for e in more]
    _, held_after = corpus.split(relabelled)

    before, after = {e.id for e in held} - {moved.id}, {e.id for e in held_after} - {moved.id}
    # at most one example crosses at each of the two groups' cuts
    assert len(before ^ after) <= 2


def test_a_batch_gets_one_triage_per_ticket_in_order(triager: Triager) -> None:
    results = triager.triage(
        [
            Ticket("", "我的账号被盗了，密码被人改了", "wechat"),
            Ticket("Refund", "I was charged twice for the same course", "email"),
            Ticket("", "建议增加夜间模式", "suggestion_box"),
        ]
    )

    assert [r.category for r in results] == [
        Category.ACCOUNT_SECURITY,
        Category.PAYMENT_REFUND,
        Category.SUGGESTION,
    ]
    assert [r.team for r in results] == ["tech_support", "finance", "customer_service"]
    assert all(0 < r.confidence <= 1 and r.reason for r in results)


def test_an_empty_batch_gets_no_triage(triager: Triager) -> None:
    assert triager.triage([]) == []


def test_a_class_in_the_learners_context_soon_makes_a_blocking_problem_urgent(
    triager: Triager,
) -> None:
    at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    context = LearnerContext(
        learner_id="L1",
        courses=(LearnerCourse(course_id="c1", next_class_at=at + timedelta(minutes=50)),),
        updated_at=at,
    )
    [alone, soon] = triager.triage(
        [
            Ticket("", "App 打开就闪退，重装也没用", "app"),
            Ticket("", "App 打开就闪退，重装也没用", "app", context=context, at=at),
        ]
    )

    assert (alone.category, soon.category) == (Category.TECHNICAL, Category.TECHNICAL)
    assert (alone.priority, soon.priority) == (Priority.MEDIUM, Priority.URGENT)


def test_the_thresholds_a_sweep_tries_reach_the_decision(triager: Triager) -> None:
    texts = [("", "App 打开就闪退，重装也没用", "app"), ("", "我的账号被盗了，密码被人改了", "app")]
    soon = [Situation(class_in=50), Situation()]

    [never, _] = triager.triage_texts(texts, soon, urgent_at=1.01, blocks_at=1.01)
    always = triager.triage_texts(texts, soon, urgent_at=0.0, blocks_at=1.01)
    [blocked, _] = triager.triage_texts(texts, soon, urgent_at=1.01, blocks_at=0.0)

    assert never.priority is Priority.MEDIUM
    # only a live compromise of the account or money is urgent by its text alone
    assert [t.priority for t in always] == [Priority.HIGH, Priority.URGENT]
    assert always[1].reason.endswith("urgent: text")
    assert blocked.priority is Priority.URGENT and "blocks a class" in blocked.reason


@pytest.fixture(scope="module")
def worded(examples: list[corpus.Example], triager: Triager) -> sp.csr_matrix:
    """The fixture's columns the category models read."""
    samples = [Sample(normal(e.subject, e.description), e.channel) for e in examples]
    return triager.models.features.transform(samples)[:, CUES:]


def test_the_category_blend_from_one_product_equals_its_three_models_own_predictions(
    examples: list[corpus.Example], triager: Triager, worded: sp.csr_matrix
) -> None:
    labels = [e.category.value for e in examples]
    regression = _classifier().fit(worded, labels)
    bayes = ComplementNB(alpha=NAIVE_BAYES_ALPHA).fit(worded, labels)
    ridge = RidgeClassifier(alpha=RIDGE_ALPHA, class_weight="balanced").fit(worded, labels)

    p = Blend(regression, bayes, ridge)(worded)

    linear = (1 - NAIVE_BAYES_WEIGHT) * regression.predict_proba(
        worded
    ) + NAIVE_BAYES_WEIGHT * bayes.predict_proba(worded)
    ridge_p = softmax(ridge.decision_function(worded) / RIDGE_TEMPERATURE, axis=1)
    expected = (1 - RIDGE_WEIGHT) * linear + RIDGE_WEIGHT * ridge_p
    assert p == pytest.approx(expected, abs=1e-5)
    assert p.sum(axis=1) == pytest.approx(1.0)
    # the confidence a triage carries is the blend's top probability
    top = triager.triage([Ticket(e.subject, e.description, e.channel) for e in examples[:3]])
    assert [t.confidence for t in top] == pytest.approx(list(p[:3].max(axis=1)), abs=1e-4)


def test_a_corpus_of_two_categories_is_refused(worded: sp.csr_matrix) -> None:
    labels = ["payment_refund", "technical"] * (worded.shape[0] // 2)
    with pytest.raises(ValueError, match="three categories"):
        Blend(
            _classifier().fit(worded, labels),
            ComplementNB().fit(worded, labels),
            RidgeClassifier().fit(worded, labels),
        )


def test_two_trainings_on_the_same_corpus_predict_the_same(
    examples: list[corpus.Example], triager: Triager
) -> None:
    tickets = [Ticket("", e.description, e.channel) for e in examples]
    again = Triager(train(list(reversed(examples))), "fixture")

    assert again.triage(tickets) == triager.triage(tickets)


def test_routing_trains_the_missing_artifact_once_then_loads_it(
    corpus_dir: Path, tmp_path: Path
) -> None:
    settings = TriageSettings(corpus_dir=corpus_dir, artifact_dir=tmp_path / "artifacts")
    digest = corpus.digest(corpus.files(corpus_dir))

    trained = load_or_train(settings)
    stored = artifact_path(settings, digest)
    written = stored.stat().st_mtime_ns
    loaded = load_or_train(settings)

    assert trained.digest == loaded.digest == digest
    assert stored.stat().st_mtime_ns == written, "the stored artifact was trained again"
    tickets = [Ticket("", e["description"], "chat") for e in FIXTURE]
    assert loaded.triage(tickets) == trained.triage(tickets)
    assert list(stored.parent.iterdir()) == [stored]


def test_training_without_a_corpus_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        build(TriageSettings(corpus_dir=tmp_path, artifact_dir=tmp_path / "a"))


def test_a_second_category_nearly_as_likely_brings_its_team_in() -> None:
    from services.routing.triage import collaborators
    from services.routing.triage.model import Prediction
    from shared.events import Category, Priority

    def prediction(second: Category, second_p: float) -> Prediction:
        return Prediction(Category.COMPLAINT, 0.5, Priority.HIGH, 0.0, 0.0, second, second_p)

    assert collaborators(prediction(Category.PAYMENT_REFUND, 0.4)) == ("finance",)
    assert collaborators(prediction(Category.PAYMENT_REFUND, 0.1)) == ()
    assert collaborators(prediction(Category.COMPLAINT, 0.4)) == ()  # its own team


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("not a complaint, just saying hi", "not a , just saying hi", "complaint"),
        (
            "i don't want a refund, i want to know why",
            "i don't want a , i want to know why",
            "refund",
        ),
        ("我不是被盗号 只是扫码登录后一直转圈", "我不是扫码登录后一直转圈", "被盗号 只是"),
        # A negation that states the problem is the problem: nothing is taken out.
        ("i can't log in", "i can't log in", ""),
        ("视频打不开", "视频打不开", ""),
        ("是不是被盗了", "是不是被盗了", ""),
    ],
)
def test_the_words_a_negation_denies_are_read_apart(text: str, kept: str, gone: str) -> None:
    assert denied(text) == (kept, gone)


def test_chinese_words_keep_a_refund_apart_from_logging_out() -> None:
    assert zh_words("退款 退出登录 refund") == ["退款", "退出", "登录"]


def test_a_corpus_without_subjects_or_latin_words_has_no_such_features() -> None:
    chinese = [
        Sample(normal("", t), "chat")
        for t in ("退款 20 元", "退款申请 20 元", "视频打不开", "视频卡")
    ]
    with_both = [Sample(normal("Refund", "退款 refunded twice, refunding?"), "email")] * 2

    none = Features().fit(chinese)
    both = Features().fit(with_both)

    assert (none.latin, none.subject) == (None, None)
    assert none.transform(chinese).shape[0] == 4
    assert both.latin is not None and "fund" in both.latin.vocabulary_
    assert both.subject is not None and "ref" in both.subject.vocabulary_


def test_the_subject_is_the_first_line_and_latin_words_leave_chinese_out() -> None:
    text = normal("Refund 申请", "我要 refund\n谢谢")

    assert _subject(text) == "refund 申请"
    assert _latin(text) == "refund refund"


@pytest.mark.parametrize(
    ("text", "heard"),
    [
        # Pinyin typed with or without spaces sounds like the characters it stands for.
        ("mima wangle, zenme zhaohui", "mi ma wang le zen me zhao hui"),
        ("密码忘了怎么找回", "mi ma wang le zen me zhao hui"),
        ("zhibojian jin bu qu", "zhi bo jian jin bu qu"),
        # 繁體 reads as simplified; Latin words that are no pinyin are left out.
        (normal("", "帳號被盜 help"), "zhang hao bei dao"),
        ("I was charged twice and need a refund", ""),
    ],
)
def test_a_text_is_heard_as_toneless_pinyin(text: str, heard: str) -> None:
    assert sounds(text) == heard
