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


def _ran_before(bus, spec: dict) -> None:
    """The bus as a run of ``spec`` leaves its sweep project (what run_sweep writes first)."""
    bus.create_project(f"sweep-{spec['name']}").as_role("system", "sweep").write(
        "sweep/spec.yaml", yaml.safe_dump(SweepSpec.model_validate(spec).model_dump(mode="json")), summary="spec")


@pytest.mark.parametrize("change, says", [
    ({"budget": "20m"}, 'budget ("10m" before, "20m" now)'),
    ({"agents": 3}, "agents (2 before, 3 now)"),
    ({"settings": {"on": {"bus_memory": False}}}, "settings.on"),
    ({"policy": {"max_timeout_s": 60}}, "policy (null before"),
    ({"allow_unsandboxed": True}, "allow_unsandboxed"),
])
def test_a_sweep_run_again_with_other_settings_under_its_name_is_refused(bus, tmp_path, capsys, change, says):
    """Its paused members would resume with the new settings and its ended ones keep the
    old: one grid, two experiments (the breaker changed the budget, kept the name)."""
    spec = {"name": "t", "tasks": ["digits"], "budget": "10m", "agents": 2, "settings": {"on": {}}}
    _ran_before(bus, spec)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**spec, **change}))
    assert main(["--root", str(bus.root), "sweep", str(path), "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert says in err and "new name" in err and err.count("\n") == 1, err


def test_a_sweep_may_grow_its_grid_and_change_how_many_run_at_once(bus):
    from cluster.sweep import check_same_sweep

    spec = {"name": "t", "tasks": ["digits"], "budget": "10m", "settings": {"on": {}}}
    _ran_before(bus, spec)
    check_same_sweep(bus, SweepSpec.model_validate({**spec, "seeds": [0, 1], "max_concurrent": 1,
                                                    "tasks": ["digits", "iris"],
                                                    "settings": {"on": {}, "off": {"bus_memory": False}}}))
