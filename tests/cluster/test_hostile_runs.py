"""Values a model or its run code sends that a lower layer would refuse are the run's
result or the model's error, never the project's crash: resource quantities Ray will
not schedule, a NUL byte in a command, a metric beyond any float, metrics nested past
Python's recursion limit."""

from __future__ import annotations

import json

import pytest

from actors.runs import RunPolicy, RunSpec, make_spec
from actors.tools import FormatError, ToolBox
from cluster.experiments import run_here
from cluster.scheduler import run_batch

from .inprocess import sandbox


@pytest.mark.parametrize("arguments, says", [
    ({"cpus": 0.00001}, "cpus must be 0 or at least 0.0001"),
    ({"gpus": 0.00002}, "gpus must be 0 or at least 0.0001"),
    ({"gpus": 1.5}, "gpus above 1 must be a whole number"),
    ({"cpus": 2.5}, "cpus above 1 must be a whole number"),
    ({"command": "echo hi\x00--bind / /host"}, "NUL byte"),
])
def test_a_run_request_ray_or_the_kernel_would_refuse_is_the_models_error(bus, arguments, says):
    view = bus.create_project("p").as_role("experimenter", "experimenter-1")
    tools = ToolBox(view, ("launch_experiment",), subtask_id="experiment-1")
    with pytest.raises(FormatError, match=says):
        tools.call("launch_experiment", json.dumps({"name": "t1", "command": "echo hi", **arguments}))
    assert "run_requested" not in bus.project("p").events().column("kind").to_pylist()


def test_quantities_ray_takes_are_kept(bus):
    view = bus.create_project("p").as_role("experimenter", "experimenter-1")
    tools = ToolBox(view, ("launch_experiment",), subtask_id="experiment-1")
    tools.call("launch_experiment", json.dumps({"name": "t1", "command": "echo hi", "cpus": 0.5, "gpus": 0.25}))
    tools.call("launch_experiment", json.dumps({"name": "t2", "command": "echo hi", "cpus": 2, "gpus": 0}))
    assert bus.project("p").events().column("kind").to_pylist().count("run_requested") == 2


def test_a_spec_ray_refuses_is_a_refused_run_not_a_crash(ray_cluster, bus):
    """The backstop behind RunRequest's checks: whatever Ray's options refuse becomes
    the run's result."""
    bus.create_project("p")
    spec = RunSpec(id="tiny", command="echo hi", gpus=0, cpus=0.00001, memory_mb=256, timeout_s=30,
                   policy=RunPolicy(sandbox="none"))
    [result] = run_batch(bus.config, "p", [spec])
    assert result.status == "refused" and "Ray refused the run's resources" in result.reason
    events = bus.project("p").events().to_pylist()
    assert [(e["kind"], e["run"], e["status"]) for e in events if e["kind"] == "experiment"] == \
        [("experiment", "tiny", "refused")]


@pytest.mark.parametrize("writer, says", [
    ('print(chr(123) + chr(34) + "cv_score" + chr(34) + ": 1" + "0" * 400 + chr(125))', "out-of-range"),  # > any float
    ('print("[" * 30000 + "]" * 30000)', "not valid JSON"),  # nested past Python's recursion limit
])
def test_metrics_no_float_can_hold_make_the_run_invalid(bus, writer, says):
    bus.create_project("p")
    command = f"python3 -c '{writer}' > metrics.json"
    spec = make_spec("big", command, RunPolicy(sandbox=sandbox(), memory_mb=512))
    [result] = run_here(bus.config, "p")([spec])
    assert result.status == "invalid" and says in result.reason, result


def test_an_output_whose_name_holds_a_control_character_is_skipped_with_that_reason(bus):
    """The breaker's example: a file named with a newline was skipped with the bus's
    scope message ("no write glob matches"), which sent the reader the wrong way."""
    bus.create_project("p")
    command = "printf x > \"$(printf 'a\\nb.txt')\"; printf y > \"$(printf 'tab\\tname')\"; printf z > ok.txt"
    spec = make_spec("names", command, RunPolicy(sandbox=sandbox(), memory_mb=512))
    [result] = run_here(bus.config, "p")([spec])
    assert result.status == "ok", result
    assert set(result.skipped) == {"a\nb.txt", "tab\tname"}, result.skipped
    assert all("control character" in why for why in result.skipped.values())
    assert bus.project("p").as_role("viewer").read("experiments/names/ok.txt") == "z"
