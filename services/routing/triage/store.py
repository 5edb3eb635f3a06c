"""Where the trained artifact lives and how routing gets it: loaded when the corpus's artifact
exists, else trained from the corpus (seconds) and stored for the next start."""

import os
import time
from collections.abc import Sequence
from pathlib import Path

import joblib
import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.routing.triage import Triager, corpus, priority
from services.routing.triage.model import Models, Sample, normal

log = structlog.get_logger(__name__)

ROOT = Path(__file__).resolve().parents[3]


class TriageSettings(BaseSettings):
    """Where the corpus and the trained artifacts are (defaults: this checkout's)."""

    model_config = SettingsConfigDict(env_prefix="CARELOOP_TRIAGE_", extra="ignore")

    corpus_dir: Path = Field(ROOT / "data" / "triage", description="The labelled corpus (*.jsonl).")
    check_dir: Path = Field(
        ROOT / "data" / "triage-check",
        description="An independent check set (*.jsonl, the corpus format), written apart from the "
        "corpus: `evaluate` scores it, nothing ever trains on it.",
    )
    artifact_dir: Path = Field(
        ROOT / "var" / "triage",
        description="Where trained models are kept, one file per corpus hash (generated, never "
        "committed).",
    )


def train(examples: Sequence[corpus.Example]) -> Models:
    """The models on `examples` (deterministic: sorted input, deterministic solvers)."""
    examples = sorted(examples, key=lambda e: e.id)
    samples = [Sample(normal(e.subject, e.description), e.channel) for e in examples]
    soon = [soonest(e, s.text) for e, s in zip(examples, samples, strict=True)]
    return Models.train(
        samples,
        [e.category for e in examples],
        [
            priority.text_level(e.category, e.priority, vip=e.tier == "vip", soon=m)
            for e, m in zip(examples, soon, strict=True)
        ],
        [
            priority.blocked(e.category, e.priority, vip=e.tier == "vip", soon=m)
            for e, m in zip(examples, soon, strict=True)
        ],
    )


def soonest(e: corpus.Example, text: str) -> int | None:
    """Minutes to an example's next class or exam, from its context or its text."""
    known = [m for m in (e.class_in, e.exam_in, priority.minutes_in_text(text)[0]) if m is not None]
    return min(known) if known else None


# The code that shapes a trained artifact: a change to it must not load an older artifact.
_TRAINING_CODE = ("model.py", "priority.py", "store.py")


def artifact_path(settings: TriageSettings, digest: str) -> Path:
    """The artifact of the corpus `digest`, named also by the training code's hash."""
    here = Path(__file__).parent
    code = corpus.digest([here / name for name in _TRAINING_CODE])
    return settings.artifact_dir / f"{digest}-{code[:12]}.joblib"


def build(settings: TriageSettings) -> tuple[Triager, Path]:
    """Train on the whole corpus and store the artifact under its hash."""
    paths = corpus.files(settings.corpus_dir)
    if not paths:
        raise FileNotFoundError(f"no triage corpus (*.jsonl) in {settings.corpus_dir}")
    digest = corpus.digest(paths)
    models = train(corpus.read(paths))
    path = artifact_path(settings, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    joblib.dump(models, partial)
    partial.replace(path)  # a reader never sees half a file
    return Triager(models, digest), path


def load_or_train(settings: TriageSettings | None = None) -> Triager:
    """The artifact of the current corpus, trained first when it is missing."""
    settings = settings or TriageSettings()
    paths = corpus.files(settings.corpus_dir)
    if not paths:
        raise FileNotFoundError(f"no triage corpus (*.jsonl) in {settings.corpus_dir}")
    digest = corpus.digest(paths)
    path = artifact_path(settings, digest)
    if path.exists():
        log.info("triage model loaded", artifact=str(path))
        return Triager(joblib.load(path), digest)
    started = time.monotonic()
    triager, path = build(settings)
    log.info(
        "triage model trained: none for this corpus yet",
        artifact=str(path),
        seconds=round(time.monotonic() - started, 1),
    )
    return triager
