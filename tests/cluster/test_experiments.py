"""Experiments: real subprocesses in the real sandbox, as Ray tasks on a small cluster."""

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import ray

from actors.runs import RunPolicy, make_spec
from cluster.experiments import launch, run_experiment

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def run(bus, project, name, command, hide=(), sandbox="bwrap", output_cap_bytes=1_000_000, ro_mounts=(), **resources):
    """Run a request as the orchestrator would (its id and folder: ``name``)."""
    policy = RunPolicy(sandbox=sandbox, output_cap_bytes=output_cap_bytes, ro_mounts=tuple(map(str, ro_mounts)))
    spec = make_spec(name, command, policy, hidden=tuple(map(str, hide)), **resources)
    return run_experiment(bus.config.model_dump(mode="json"), project, spec.model_dump(mode="json"))


@pytest.fixture
def proj(bus):
    p = bus.create_project("exp")
    p.as_role("coder").write("code/train.py", "import json\njson.dump({'score': 0.75, 'loss': 0.5}, "
                             "open('metrics.json', 'w'))\nprint('trained')\n")
    return p


@needs_bwrap
def test_a_run_reports_its_metrics_and_lands_on_the_bus(bus, proj):
    result = run(bus, "exp", "r1", f"python3 {proj.dir}/code/train.py")
    assert (result["status"], result["exit_code"], result["metrics"]) == ("ok", 0, {"score": 0.75, "loss": 0.5})
    viewer = proj.as_role("viewer")
    assert "trained" in viewer.read("experiments/r1/output.log")
    assert json.loads(viewer.read("experiments/r1/result.json"))["status"] == "ok"
    event = [r for r in proj.events().to_pylist() if r["kind"] == "experiment"][-1]
    assert dict(event["metrics"])["score"] == 0.75 and event["instance"] == "run-r1"


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
@needs_bwrap
def test_failures_timeouts_and_memory_are_normal_results(bus, proj, tmp_path):
    failed = run(bus, "exp", "boom", "python3 -c 'raise ValueError(\"bad feature\")'")
    assert failed["status"] == "failed" and "ValueError: bad feature" in failed["output_tail"]
    slow = run(bus, "exp", "slow", "sleep 3; touch finished", timeout_s=1.5)
    assert slow["status"] == "timeout" and slow["duration_s"] < 10
    import time
    time.sleep(2)
    assert not (Path(slow["scratch_dir"]) / "experiments" / "slow" / "finished").exists()  # killed, not left running
    oom = run(bus, "exp", "oom", "python3 -c 'x = bytearray(2 * 1024**3)'", memory_mb=300)
    assert oom["status"] == "oom"
    loud = run(bus, "exp", "loud", "yes y | head -c 300000; echo THE-END", output_cap_bytes=10_000)
    assert loud["status"] == "ok"
    log = (proj.dir / "experiments" / "loud" / "output.log").read_bytes()
    assert len(log) < 20_000 and b"dropped" in log and b"THE-END" in log


@pytest.fixture
def private_dir():
    """Outside /tmp (a run has its own), so that only the sandbox keeps it out."""
    path = Path(tempfile.mkdtemp(prefix="aisci-private-", dir="/var/tmp"))
    path.chmod(0o755)  # runs read as an unprivileged user: a mount is for everyone to read
    (path / "answers.csv").write_text("id,target\n0,1\n")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_bwrap
def test_the_sandbox_hides_private_answers_and_protects_the_bus(bus, proj, private_dir):
    private = private_dir
    control = run(bus, "exp", "control", f"cat {private}/answers.csv", ro_mounts=[private])
    assert control["status"] == "ok" and "id,target" in control["output_tail"]  # visible when mounted...
    hidden = run(bus, "exp", "hidden", f"cat {private}/answers.csv", ro_mounts=[private], hide=[private])
    assert hidden["status"] == "refused" and str(private) in hidden["reason"]  # ...unless hidden: then refused
    unmounted = run(bus, "exp", "unmounted", f"cat {private}/answers.csv")
    assert unmounted["status"] == "failed"  # and never there unless mounted
    other = bus.create_project("other")
    other.as_role("coder").write("code/secret.py", "SECRET = 1\n")
    probes = {
        "read_answers": f"cat {private}/answers.csv",
        "read_other_project": f"cat {other.dir}/code/secret.py",
        "write_own_code": f"echo hacked > {proj.dir}/code/train.py",
        "write_other_project": f"echo x > {other.dir}/code/planted.py",
        "write_index": f"touch {bus.root}/index/planted",
        "write_home": "touch /root/planted",
        "read_ray_token": "cat ~root/.ray/auth_token",
    }
    for name, command in probes.items():
        result = run(bus, "exp", name.replace("_", "-"), command, hide=[str(private)])
        assert result["status"] == "failed", (name, result["output_tail"])
    assert "import json" in (proj.dir / "code" / "train.py").read_text()
    assert not (other.dir / "code" / "planted.py").exists() and not (bus.root / "index" / "planted").exists()
    ok = run(bus, "exp", "own-folder", "echo fine > note.txt && cat note.txt && touch ~/x /tmp/y",
             hide=[str(private)])
    assert ok["status"] == "ok" and "fine" in ok["output_tail"]  # HOME is the private /tmp
    assert not Path("/root/planted").exists()


@needs_bwrap
def test_runs_are_ray_tasks_placed_by_their_resources(ray_cluster, bus, proj):
    cmd = "python3 -c \"import json, os; json.dump({'gpu': float(os.environ.get('CUDA_VISIBLE_DEVICES', '-1'))}, open('metrics.json', 'w'))\""
    on_gpu = ray.get(launch(bus.config, "exp", make_spec("gpu-run", cmd, gpus=1, memory_mb=512)))
    on_cpu = ray.get(launch(bus.config, "exp", make_spec("cpu-run", cmd, gpus=0, memory_mb=512)))
    assert on_gpu["status"] == "ok" and on_gpu["metrics"]["gpu"] in (0.0, 1.0)  # Ray gave it one (fake) GPU
    assert on_cpu["status"] == "ok"
    assert on_gpu["node"]


@pytest.mark.slow
@needs_bwrap
def test_output_is_streamed_to_the_bus_while_the_run_goes(bus, proj):
    import threading
    import time

    done = threading.Event()
    threading.Thread(target=lambda: (run(bus, "exp", "stream", "echo first; sleep 6; echo second"),
                                     done.set()), daemon=True).start()
    viewer = proj.as_role("viewer")
    seen_first_while_running = False
    for _ in range(100):
        time.sleep(0.1)
        if viewer.exists("experiments/stream/output.log") and "first" in viewer.read("experiments/stream/output.log"):
            seen_first_while_running = not done.is_set()
            break
    assert seen_first_while_running
    assert done.wait(30)
    assert viewer.read("experiments/stream/output.log") == "first\nsecond\n"
    appends = [e for e in proj.events().to_pylist() if e["kind"] == "append" and e["path"] == "experiments/stream/output.log"]
    assert len(appends) >= 2


def test_unsandboxed_runs_work_where_asked(bus, proj):
    result = run(bus, "exp", "plain", f"python3 {proj.dir}/code/train.py", sandbox="none")
    assert (result["status"], result["metrics"]["score"]) == ("ok", 0.75)
