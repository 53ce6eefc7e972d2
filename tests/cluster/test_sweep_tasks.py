"""A sweep's tasks: shipped names, folders, and MLE-bench competition ids in a data dir
(laid out as ``mlebench prepare`` leaves it), found and checked before Ray starts, and
passed to each member's job (no Ray here: nothing is run)."""

import pytest
import ray
import yaml

from benchmarks.mlebench.task import Task
from cluster.cli import main
from cluster.errors import UserError
from cluster.sweep import SweepSpec
from tests.benchmarks.test_mlebench_layout import mlebench  # noqa: F401  (the fixture: a prepared data dir)

NOMAD = "nomad2018-predict-transparent-conductors"
SPOOKY = "spooky-author-identification"


def _spec(tmp_path, **fields) -> SweepSpec:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "m", "budget": "10m", **fields}))
    return SweepSpec.load(path)


def test_competition_ids_in_a_data_dir_become_jobs_that_grade_as_mlebench_does(mlebench, tmp_path):  # noqa: F811
    data, expected = mlebench
    spec = _spec(tmp_path, data_dir=str(data), tasks=[NOMAD, SPOOKY], seeds=[0, 1])
    grid = spec.jobs()
    assert [(c["task"], c["seed"]) for _, c in grid] == [(NOMAD, 0), (NOMAD, 1), (SPOOKY, 0), (SPOOKY, 1)]
    job = grid[0][0]
    assert job.project == f"m-{NOMAD}-default-s0" and job.task == str(data / NOMAD)
    # The member's job carries what was found (the installed mlebench's config and leaderboard), no data dir:
    # it is what `aisci resume` and the final grade read.
    assert job.task_options.data_dir is None and job.task_options.config.endswith(f"competitions/{NOMAD}/config.yaml")
    assert job.hidden and all("private" in p for p in job.hidden)
    submission, score = expected[NOMAD]
    path = tmp_path / "submission.csv"
    submission.to_csv(path, index=False)
    report = Task(job.task, job.task_options).grade(path)
    assert report.score == score and report.leaderboard_size == 10 and report.bronze_medal


def test_an_unknown_competition_id_is_one_line_naming_it_and_where_it_looked(mlebench, tmp_path):  # noqa: F811
    # Whether an earlier test of this process joined the session's cluster: then "Ray not
    # started" reads as "Ray's state unchanged" (the suite's order decides, not this test).
    ray_before = ray.is_initialized()
    data, _ = mlebench
    spec = _spec(tmp_path, data_dir=str(data), tasks=[NOMAD, "no-such-competition"])
    with pytest.raises(UserError) as e:
        spec.jobs()
    line = str(e.value)
    assert "'no-such-competition'" in line and str(data / "no-such-competition") in line and "mlebench prepare" in line
    assert len(line.splitlines()) == 1 and ray.is_initialized() == ray_before
    # Through the command line: exit code 2, one line, before Ray starts or anything is written.
    assert main(["--root", str(tmp_path / "bus"), "sweep", str(tmp_path / "sweep.yaml")]) == 2
    assert ray.is_initialized() == ray_before and not (tmp_path / "bus" / "projects" / "sweep-m").exists()


def test_task_entries_give_their_own_data_dir_and_flags(mlebench, tmp_path):  # noqa: F811
    data, _ = mlebench
    other = tmp_path / "other"
    other.mkdir()
    (other / NOMAD).symlink_to(data / NOMAD, target_is_directory=True)
    spec = _spec(tmp_path, tasks=[
        {"id": NOMAD, "data_dir": str(other), "metric": "mean-column-wise-rmsle"},
        "digits",  # no data dir anywhere: a shipped task
    ])
    (nomad, _), (digits, _) = spec.jobs()
    assert nomad.task_options.metric == "mean-column-wise-rmsle" and nomad.task.endswith(NOMAD)
    assert digits.task.endswith("tasks/digits")
    # A sweep with a data dir: `data_dir: null` names a shipped task beside its competitions.
    mixed = _spec(tmp_path, data_dir=str(data), tasks=[SPOOKY, {"id": "digits", "data_dir": None}])
    assert [c["task"] for _, c in mixed.jobs()] == [SPOOKY, "digits"]
    # The spec recorded on the bus keeps unset and null apart: read back, it names the same tasks.
    again = SweepSpec.model_validate(yaml.safe_load(yaml.safe_dump(mixed.model_dump(mode="json"))))
    assert [c["task"] for _, c in again.jobs()] == [SPOOKY, "digits"]
    with pytest.raises(UserError, match=r"task 'digits' in the data dir .*has no prepared/ folder"):
        _spec(tmp_path, data_dir=str(data), tasks=["digits"]).jobs()
    with pytest.raises(UserError, match=f"task '{NOMAD}' in the data dir .*give --metric"):
        _spec(tmp_path, data_dir=str(data), tasks=[{"id": NOMAD, "metric": "f1"}]).jobs()


def test_bad_task_entries_say_what_is_wrong(mlebench, tmp_path):  # noqa: F811
    data, _ = mlebench
    with pytest.raises(UserError, match="datadir"):
        _spec(tmp_path, tasks=[{"id": NOMAD, "datadir": str(data)}])
    with pytest.raises(UserError, match="listed twice"):
        _spec(tmp_path, data_dir=str(data), tasks=[NOMAD, {"id": NOMAD}]).jobs()
    with pytest.raises(UserError, match="no task 'spooky-author-identification'"):
        _spec(tmp_path, tasks=[SPOOKY]).jobs()  # an id with no data dir: not a shipped task nor a folder
