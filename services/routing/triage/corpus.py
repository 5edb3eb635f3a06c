"""The labelled triage corpus (data/triage/*.jsonl): reading it, its hash, the held-out split."""

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.events import Category, Priority

# The held-out share and the seed that draws it: fixed, so every run scores the same split.
HELD_OUT_SHARE = 0.2
SEED = 20261130


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled ticket, as a corpus writer wrote it."""

    id: str
    channel: str
    language: str
    subject: str
    description: str
    tier: str
    class_in: int | None  # minutes to the learner's next class, when there is one
    exam_in: int | None  # minutes to the learner's next exam
    category: Category
    priority: Priority
    reason: str


def files(directory: Path) -> list[Path]:
    """The corpus files of `directory`, in name order."""
    return sorted(directory.glob("*.jsonl"))


def digest(paths: Sequence[Path]) -> str:
    """SHA-256 of the corpus: every file's name and bytes, in name order. The artifact is named
    by it, so a changed corpus never loads a model trained on an older one."""
    h = hashlib.sha256()
    for p in sorted(paths):
        data = p.read_bytes()
        h.update(f"{p.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def read(paths: Sequence[Path]) -> list[Example]:
    """Every example of `paths`, sorted by id; a line that is no valid example is an error
    naming its file and line (a corpus with a typo must not train quietly without it)."""
    examples = []
    for p in sorted(paths):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                examples.append(_example(json.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{p}:{n}: not a triage example: {e}") from e
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate example ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return sorted(examples, key=lambda e: e.id)


def _example(o: dict[str, object]) -> Example:
    context = o.get("context") or {}
    if not isinstance(context, dict):
        raise TypeError("context is not an object")
    return Example(
        id=str(o["id"]),
        channel=str(o["channel"]),
        language=str(o["language"]),
        subject=str(o.get("subject") or ""),
        description=str(o["description"]),
        tier=str(context.get("tier") or "standard"),
        class_in=_minutes(context.get("next_class_in_minutes")),
        exam_in=_minutes(context.get("next_exam_in_minutes")),
        category=Category(str(o["category"])),
        priority=Priority(str(o["priority"])),
        reason=str(o.get("reason") or ""),
    )


def _minutes(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"minutes must be a number or null, not {value!r}")
    return int(value)


def split(
    examples: Sequence[Example], *, share: float = HELD_OUT_SHARE, seed: int = SEED
) -> tuple[list[Example], list[Example]]:
    """(train, held out): `share` of each (category, language) group is held out and never
    trained on: the group's examples whose ids hash lowest (SHA-256 of seed and id). Whether an
    example is held out depends on its id and its group alone, so adding examples or relabelling
    some moves only the few at their groups' cuts; a shuffle of the whole corpus would draw
    another split whenever one label changed."""
    groups: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for e in examples:
        groups[(e.category, e.language)].append(e)
    train, held = [], []
    for key in sorted(groups):
        group = sorted(
            groups[key], key=lambda e: hashlib.sha256(f"{seed}:{e.id}".encode()).digest()
        )
        cut = round(len(group) * share)
        held += group[:cut]
        train += group[cut:]
    return sorted(train, key=lambda e: e.id), sorted(held, key=lambda e: e.id)
