"""Competition folders exactly as MLE-bench's ``prepare`` lays them out, graded.

Each folder is built here as the competition's ``prepare.py`` in openai/mle-bench
(783b15a) writes it: ``<data-dir>/<id>/prepared/public/`` (train.csv, test.csv,
sample_submission.csv, and the description.md that ``mlebench prepare`` copies in),
``<data-dir>/<id>/prepared/private/test.csv`` (the answers: spooky's one-hot, jigsaw's
Kaggle test labels with -1 rows, nomad2018's whole test rows), and the definition in an
installed ``mlebench`` package (``mlebench/competitions/<id>/config.yaml``,
``leaderboard.csv``). Scores are checked against scikit-learn.
"""

import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import log_loss, mean_squared_log_error, roc_auc_score

from benchmarks.mlebench.layout import locate
from benchmarks.mlebench.task import InvalidTask, Task, TaskOptions, open_task

RNG = np.random.default_rng(12)
N = 60


def _spooky(public, private):
    ids = [f"id{i:05d}" for i in range(N)]
    authors = RNG.choice(["EAP", "HPL", "MWS"], N)
    pd.DataFrame({"id": [f"tr{i}" for i in range(5)], "text": "It was a dark night.", "author": "EAP"}) \
        .to_csv(public / "train.csv", index=False)
    pd.DataFrame({"id": ids, "text": "Words."}).to_csv(public / "test.csv", index=False)
    onehot = pd.DataFrame({"id": ids, **{a: (authors == a).astype(int) for a in ("EAP", "HPL", "MWS")}})
    onehot.assign(EAP=0.403493538995863, HPL=0.287808366106543, MWS=0.308698094897594) \
        .to_csv(public / "sample_submission.csv", index=False)
    onehot.to_csv(private / "test.csv", index=False)
    p = RNG.dirichlet([1, 1, 1], N)
    submission = pd.DataFrame({"id": ids, "EAP": p[:, 0], "HPL": p[:, 1], "MWS": p[:, 2]})
    return submission, round(log_loss(onehot[["EAP", "HPL", "MWS"]].to_numpy(), p), 5)


_JIGSAW = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def _jigsaw(public, private):
    ids = [f"{i:016x}" for i in range(N)]
    labels = RNG.integers(0, 2, (N, 6))
    labels[:8] = -1  # test rows Kaggle never scored
    pd.DataFrame({"id": ["a1"], "comment_text": ["hello"], **{c: [0] for c in _JIGSAW}}) \
        .to_csv(public / "train.csv", index=False)
    pd.DataFrame({"id": ids, "comment_text": "text"}).to_csv(public / "test.csv", index=False)
    pd.DataFrame({"id": ids, **{c: 0.5 for c in _JIGSAW}}).to_csv(public / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids, **dict(zip(_JIGSAW, labels.T))}).to_csv(private / "test.csv", index=False)
    scores = RNG.random((N, 6))
    expected = np.mean([roc_auc_score(labels[8:, j], scores[8:, j]) for j in range(6)])
    return pd.DataFrame({"id": ids, **dict(zip(_JIGSAW, scores.T))}), round(float(expected), 5)


def _nomad(public, private):
    targets = ["formation_energy_ev_natom", "bandgap_energy_ev"]
    test = pd.DataFrame({"id": np.arange(1, N + 1), "spacegroup": RNG.integers(1, 200, N),
                         "formation_energy_ev_natom": RNG.random(N) * 0.4, "bandgap_energy_ev": RNG.random(N) * 5})
    test.drop(columns=targets).to_csv(public / "test.csv", index=False)
    test.assign(id=test.id + 1000).to_csv(public / "train.csv", index=False)
    test.to_csv(private / "test.csv", index=False)
    pd.DataFrame({"id": test.id, targets[0]: 0.1779, targets[1]: 1.8892}).to_csv(
        public / "sample_submission.csv", index=False)
    pred = test[targets] * RNG.uniform(0.7, 1.3, (N, 2))
    expected = np.mean([np.sqrt(mean_squared_log_error(test[c], pred[c])) for c in targets])
    return pd.DataFrame({"id": test.id, **{c: pred[c] for c in targets}}), round(float(expected), 5)


BUILDERS = {"spooky-author-identification": (_spooky, "multi-class-log-loss", True),
            "jigsaw-toxic-comment-classification-challenge": (_jigsaw, "column-wise ROC AUC", False),
            "nomad2018-predict-transparent-conductors": (_nomad, "mean-column-wise-rmsle", True)}


@pytest.fixture
def mlebench(tmp_path, monkeypatch):
    """A data dir as ``mlebench prepare`` leaves it, and an installed ``mlebench``
    package holding the competitions' configs and leaderboards."""
    data, site = tmp_path / "data", tmp_path / "site"
    (site / "mlebench").mkdir(parents=True)
    (site / "mlebench" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("mlebench", None)
    expected = {}
    for cid, (build, grader, lower) in BUILDERS.items():
        public, private = data / cid / "prepared" / "public", data / cid / "prepared" / "private"
        public.mkdir(parents=True)
        private.mkdir(parents=True)
        (data / cid / "raw").mkdir()
        (public / "description.md").write_text(f"# {cid}\n")
        submission, score = build(public, private)
        expected[cid] = (submission, score)
        home = site / "mlebench" / "competitions" / cid
        home.mkdir(parents=True)
        (home / "config.yaml").write_text(yaml.safe_dump({
            "id": cid, "name": cid, "competition_type": "simple", "awards_medals": False, "prizes": None,
            "description": f"mlebench/competitions/{cid}/description.md",
            "dataset": {"answers": f"{cid}/prepared/private/test.csv",
                        "sample_submission": f"{cid}/prepared/public/sample_submission.csv"},
            "grader": {"name": grader, "grade_fn": f"mlebench.competitions.{cid}.grade:grade"},
            "preparer": f"mlebench.competitions.{cid}.prepare:prepare"}))
        factors = (0.5, 0.8, 0.9, 1.1, 1.2, 1.5, 2, 3, 4, 5)  # the submission lands 4th of 11
        board = sorted([score * f if lower else score / f for f in factors], reverse=not lower)
        pd.DataFrame({"teamName": [f"t{i}" for i in range(10)], "score": board}).to_csv(
            home / "leaderboard.csv", index=False)
    return data, expected


@pytest.mark.parametrize("cid", list(BUILDERS))
def test_a_prepared_competition_is_graded_as_mlebench_grades_it(mlebench, tmp_path, cid):
    data, expected = mlebench
    submission, score = expected[cid]
    where = locate(cid, data)
    assert where.config.parent.name == cid and where.leaderboard.name == "leaderboard.csv"
    task = open_task(cid, TaskOptions(data_dir=str(data)))
    assert task.id == cid and task.description_path == data / cid / "prepared" / "public" / "description.md"
    assert task.is_lower_better == BUILDERS[cid][2]
    path = tmp_path / "submission.csv"
    submission.to_csv(path, index=False)
    report = task.grade(path)
    assert report.valid_submission and report.score == score, (report, score)
    assert report.competition_id == cid and report.leaderboard_size == 10
    assert report.any_medal == (report.gold_medal or report.silver_medal or report.bronze_medal)
    # 4th on a 10-team board: the bronze threshold is the 4th score (it reaches it), the median far behind
    assert report.bronze_medal and report.above_median
    sample = task.grade(data / cid / "prepared" / "public" / "sample_submission.csv")
    assert sample.valid_submission, sample.reason
    submission.iloc[:-1].to_csv(path, index=False)
    short = task.grade(path)
    assert not short.valid_submission and short.score is None and "must be exactly" in short.reason


def test_a_lite_competition_needs_no_config_and_others_say_which_flag(mlebench, tmp_path):
    data, expected = mlebench
    cid = "nomad2018-predict-transparent-conductors"
    bare = tmp_path / "bare"
    (bare / cid).mkdir(parents=True)
    shutil.copytree(data / cid / "prepared", bare / cid / "prepared")
    task = Task(bare / cid)  # no config.yaml: the registry's grader stands in; no leaderboard: no medals
    assert task.metric.name == "mean-column-wise-rmsle" and task.leaderboard() is None
    (bare / "mystery" / "prepared" / "public").mkdir(parents=True)
    with pytest.raises(InvalidTask, match="--config"):
        Task(bare / "mystery")
    config = yaml.safe_load((bare.parent / "site" / "mlebench" / "competitions" / cid / "config.yaml").read_text())
    (bare / cid / "config.yaml").write_text(yaml.safe_dump({**config, "id": "my-copy", "grader": {"name": "auto"}}))
    with pytest.raises(InvalidTask, match="give --metric"):
        Task(bare / cid)
    assert Task(bare / cid, TaskOptions(metric="mean-column-wise-rmsle")).score(
        expected[cid][0]) == expected[cid][1]
    spec = Task(bare / cid, TaskOptions(metric="mean-column-wise-rmsle")).summary()
    assert spec["id_column"] == "id" and spec["target_columns"] == ["formation_energy_ev_natom", "bandgap_energy_ev"]
    sample = pd.read_csv(bare / cid / "prepared" / "public" / "sample_submission.csv")
    sample.assign(id=1).to_csv(bare / cid / "prepared" / "public" / "sample_submission.csv", index=False)
    with pytest.raises(InvalidTask, match="--id-column"):
        Task(bare / cid, TaskOptions(metric="mean-column-wise-rmsle"))


@pytest.mark.parametrize("make", ["missing", "folder", "binary"])
def test_a_config_that_cannot_be_read_is_one_invalid_task(tmp_path, make):
    """A --config that is not there, is a folder or is not text: InvalidTask naming the
    file (was a FileNotFoundError / IsADirectoryError traceback), never a source path."""
    from benchmarks.mlebench.layout import CompetitionConfig
    path = tmp_path / "config.yaml"
    if make == "folder":
        path.mkdir()
    elif make == "binary":
        path.write_bytes(b"\xff\xfe\x00config")
    with pytest.raises(InvalidTask, match="config.yaml") as e:
        CompetitionConfig.load(path)
    assert ".py" not in str(e.value)
    with pytest.raises(InvalidTask) as e:
        Task(tmp_path / "nothing-here")
    assert ".py" not in str(e.value) and "--config" in str(e.value)
