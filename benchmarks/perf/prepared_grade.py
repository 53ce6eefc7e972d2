"""A competition folder laid out exactly as MLE-bench's ``prepare`` leaves it, run and
graded end to end by ``aisci run ID --data-dir DIR`` (issue 12's figure).

    python -m benchmarks.perf.prepared_grade [--keep DIR]

No Kaggle data can be downloaded here, so the folder is spooky-author-identification's
*layout* filled with text that ships with the shipped ``docstrings`` task: three of its
sources stand for the three authors (numpy -> EAP, pandas -> HPL, scikit-learn -> MWS).
The files are what spooky's ``prepare.py`` in openai/mle-bench writes:
``prepared/public/{train.csv (id, text, author), test.csv (id, text),
sample_submission.csv (id, EAP, HPL, MWS), description.md}`` and
``prepared/private/test.csv`` (the answers, one-hot). No config.yaml and no
leaderboard: our registry knows the Lite competition's grader, and without MLE-bench's
leaderboard the grade has no medals. Prints the ``CompetitionReport`` and the wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.mlebench.task import shipped_tasks
from bus import Bus

AUTHORS = {"numpy": "EAP", "pandas": "HPL", "scikit-learn": "MWS"}
CID = "spooky-author-identification"


def build(data_dir: Path) -> Path:
    """Write ``data_dir/<CID>/prepared/...`` from the docstrings task; returns the folder."""
    src = shipped_tasks()["docstrings"] / "prepared"
    public, private = (data_dir / CID / "prepared" / p for p in ("public", "private"))
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    train = pd.read_csv(src / "public" / "train.csv")
    train = train[train["library"].isin(AUTHORS)]
    train.assign(author=train["library"].map(AUTHORS)).rename(columns={"paragraph": "text"})[
        ["id", "text", "author"]].to_csv(public / "train.csv", index=False)
    answers = pd.read_csv(src / "private" / "answers.csv")
    answers = answers[answers[list(AUTHORS)].sum(axis=1) == 1]  # rows of the three sources only
    test = pd.read_csv(src / "public" / "test.csv").set_index("id").loc[answers["id"]].reset_index()
    test.rename(columns={"paragraph": "text"})[["id", "text"]].to_csv(public / "test.csv", index=False)
    onehot = answers.rename(columns=AUTHORS)[["id", *AUTHORS.values()]]
    onehot.to_csv(private / "test.csv", index=False)
    onehot.assign(EAP=0.403493538995863, HPL=0.287808366106543, MWS=0.308698094897594).to_csv(
        public / "sample_submission.csv", index=False)
    (public / "description.md").write_text("# Spooky Author Identification (layout only)\n\nPredict, for each "
                                           "text in test.csv, the probability of each author (EAP, HPL, MWS). "
                                           "Scored by multi-class log loss.\n")
    return data_dir / CID


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="build the data dir and the bus here (default: a temporary folder)")
    args = ap.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="aisci-prepared-"))
    folder = build(base / "data")
    print(f"prepared {folder} ({sum(1 for _ in folder.rglob('*') if _.is_file())} files)")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cluster.cli", "--root", str(base / "bus"), "run", CID,
                           "--data-dir", str(base / "data"), "--project", "spooky-1"], text=True)
    wall = time.monotonic() - started
    try:
        report = json.loads(Bus(base / "bus").project("spooky-1").as_role("viewer").read("report/grade.json"))
    except Exception as e:  # noqa: BLE001  (a figure script: say what happened and go on)
        report, why = None, f"{type(e).__name__}: {e}"
    print(f"aisci run exit {done.returncode} in {wall:.0f} s")
    print(json.dumps(report, indent=1) if report else f"no grade: {why}")
    return 0 if report and report.get("valid_submission") else 1


if __name__ == "__main__":
    sys.exit(main())
