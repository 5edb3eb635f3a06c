"""`python -m services.routing.triage train|evaluate|sweep`: build the artifact of the current
corpus, score triage (on the corpus and on the independent check set in data/triage-check/,
never trained on) and write docs/triage-evaluation.md, or print the urgent thresholds' table."""

import argparse
import time

from services.routing.triage import corpus
from services.routing.triage.evaluate import report, sweep
from services.routing.triage.store import ROOT, TriageSettings, build


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.routing.triage")
    parser.add_argument("command", choices=("train", "evaluate", "sweep"))
    parser.add_argument(
        "--report", default=str(ROOT / "docs" / "triage-evaluation.md"), help="evaluate: where"
    )
    args = parser.parse_args()
    settings = TriageSettings()
    if args.command == "train":
        started = time.monotonic()
        triager, path = build(settings)
        print(
            f"trained on corpus {triager.digest[:16]}… in {time.monotonic() - started:.1f} s: {path}"
        )
        return
    paths = corpus.files(settings.corpus_dir)
    if args.command == "sweep":
        print(sweep(corpus.read(paths)))
        return
    check = corpus.files(settings.check_dir) if settings.check_dir.is_dir() else []
    if set(check) & set(paths):
        raise ValueError(
            f"the check set {settings.check_dir} lies in the corpus: it would be trained on"
        )
    text = report(corpus.read(paths), corpus.digest(paths), corpus.read(check))
    with open(args.report, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    print(f"written to {args.report}")


if __name__ == "__main__":
    main()
