"""The ``run`` tool end to end: the real agent loop, the scripted model, the real
sandbox (``cluster.quick_run.SandboxExecutor``) and the real bus. Skipped where
bubblewrap cannot start a sandbox (as tests/cluster/test_sandbox.py)."""

import os
import time

import pytest

from actors.agent import Agent, Subtask
from actors.llm.scripted import ScriptedLLM, reply
from actors.runs import RunPolicy
from cluster import sandbox
from cluster.quick_run import SandboxExecutor

from .sandbox_helpers import gone

needs_sandbox = pytest.mark.skipif(not sandbox.probe().ok, reason=f"no sandbox here: {sandbox.probe().reason}")


@pytest.fixture
def proj(bus):
    p = bus.create_project("iris")
    p.as_role("system").write("task/description.md", "Classify iris flowers.\n", summary="task")
    p.as_role("system").write("submission/submission.csv", "id,y\n", summary="not the coder's")
    p.as_role("coder", "coder-0").write("code/train.py", "print('trained')\n", summary="train")
    return p


def results_of(bus, calls, role="coder", policy=None, hidden=(), executor=None, one_step=False):
    """What the model saw for each call: one call a step, or all in one reply (``one_step``:
    malformed calls, which end an agent after three steps of them)."""
    steps = [calls] if one_step else [[c] for c in calls]
    llm = ScriptedLLM([reply(calls=s) for s in steps] + [reply(calls=[("finish", {"summary": "done"})])])
    executor = executor or SandboxExecutor(bus.config, policy or RunPolicy(), hidden)
    result = Agent(bus, llm, executor=executor).run("iris", Subtask(id="s1", role=role, goal="check"))
    assert result.status == "finished", result.summary
    if one_step:
        return [m["content"] for m in llm.requests[1].messages[-len(calls):]]
    return [llm.requests[n].messages[-1]["content"] for n in range(1, len(calls) + 1)]


@needs_sandbox
def test_a_command_runs_in_a_copy_of_code_and_its_changes_become_the_agents_versions(bus, proj):
    [out] = results_of(bus, [("run", {"command": "python3 train.py && cat ../task/description.md && "
                                                 "echo 'print(2)' > check.py && echo '# ok' >> train.py && mkdir -p "
                                                 "lib && echo x > lib/util.py && python3 -c 'import check'"})])
    assert out.startswith("exit code 0 in ") and "trained\nClassify iris flowers.\n2" in out
    view = proj.as_role("viewer")
    assert view.read("code/check.py") == "print(2)\n" and view.read("code/lib/util.py") == "x\n"
    assert view.read("code/train.py") == "print('trained')\n# ok\n"
    row = view.versions("code/train.py").to_pylist()[-1]
    assert row["instance"] == "coder-s1" and row["summary"].startswith("written by run: python3 train.py")
    assert "wrote code/check.py" in out and "__pycache__" not in out  # python's own cache is not the agent's file


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
@needs_sandbox
def test_exit_codes_time_limits_and_floods_are_told_and_nothing_survives(bus, proj):
    t0 = time.monotonic()
    failed, slow, flood, binary = results_of(bus, [
        ("run", {"command": "echo to stderr >&2; exit 3"}),
        ("run", {"command": "sleep 1000 & sleep 999", "timeout_s": 1}),
        ("run", {"command": "head -c 50000000 /dev/zero | tr '\\0' y; echo; echo THE-END"}),
        ("run", {"command": "printf '\\xff\\xfe\\x00 bytes'"}),
    ])
    assert failed.startswith("exit code 3") and "to stderr" in failed
    assert slow.startswith("killed after its 1 s time limit") and gone("sleep 999")
    assert "bytes cut" in flood and flood.rstrip().endswith("THE-END") and "50000009 bytes" in flood
    assert len(flood) < 10_000
    assert binary.startswith("exit code 0") and "\ufffd" in binary
    assert time.monotonic() - t0 < 60


@needs_sandbox
def test_writes_outside_the_roles_scope_are_reported_and_not_written(bus, proj):
    # The experimenter may read code/ but not write it: the copy changes, the bus does not.
    [out] = results_of(bus, [("run", {"command": "echo 'print(1)' > new.py; ln -s /etc/passwd link; "
                                                 "touch ../task/planted; echo $?"})], role="experimenter")
    assert "not written: code/new.py:" in out and "may not write" in out.split("not written: code/new.py:")[1]
    assert "not written: code/link: not a regular file" in out
    assert "Read-only file system" in out
    assert not (proj.dir / "code" / "new.py").exists() and not (proj.dir / "task" / "planted").exists()


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
@needs_sandbox
def test_no_answers_no_unreadable_folder_no_operator_file_and_no_network(bus, proj, tmp_path):
    answers = tmp_path / "competition" / "prepared" / "private" / "answers.csv"
    answers.parent.mkdir(parents=True)
    answers.write_text("id,y\n1,secret-label\n")
    bus.operator.write("iris", "job.json", b'{"hidden": "secret-operator"}')
    probe = (f"cat {answers}; cat {bus.root}/operator/iris/job.json; ls ../submission; ls {bus.root}; "
             "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\"; "
             "grep -rs secret-la''bel /tmp /run /root /home /opt /srv /mnt /var 2>/dev/null | head -1; echo done")
    [out] = results_of(bus, [("run", {"command": probe, "timeout_s": 60})],
                       hidden=(str(answers.parent),))
    assert "secret-label" not in out and "secret-operator" not in out
    assert "No such file" in out and "ERROR" not in out.splitlines()[0]
    assert "Network is unreachable" in out or "OSError" in out
    # An operator's mount that would show the answers is refused, never run.
    [refused] = results_of(bus, [("run", {"command": "true"})],
                           policy=RunPolicy(ro_mounts=(str(tmp_path / "competition"),)))
    assert refused.startswith("ERROR: run refused:") and "private answers" in refused


@needs_sandbox
def test_memory_is_capped_by_the_operators_policy(bus, proj):
    [out] = results_of(bus, [("run", {"command": "python3 -c 'x = bytearray(4 << 30)'"})],
                       policy=RunPolicy(memory_mb=512))
    assert out.startswith("exit code 1") and "MemoryError" in out and "out of memory" in out


def test_bad_commands_and_time_limits_are_the_models_errors(bus, proj):
    empty, blank, huge, nul, zero, long_, typed = results_of(bus, [
        ("run", {"command": ""}),
        ("run", {"command": "   "}),
        ("run", {"command": "echo " + "x" * 9000}),
        ("run", {"command": "echo a\x00b"}),
        ("run", {"command": "true", "timeout_s": 0}),
        ("run", {"command": "true", "timeout_s": 3600}),
        ("run", {"command": ["rm", "-rf", "/"]}),
    ], executor=SandboxExecutor(bus.config, RunPolicy(sandbox="none")), one_step=True)
    assert all(o.startswith("ERROR") for o in (empty, blank, huge, nul, zero, long_, typed))
    assert "at least 1 character" in empty and "blank" in blank and "at most 8000" in huge and "NUL" in nul
    assert "1 to 300 seconds" in zero and "launch_experiment" in long_ and "must be a string" in typed


def test_a_project_without_the_operators_policy_runs_nothing(bus, proj):
    [out] = results_of(bus, [("run", {"command": "touch /tmp/should-not-exist-aisci"})],
                       executor=SandboxExecutor(bus.config))
    assert out.startswith("ERROR: run refused:") and "no operator's run policy" in out
    assert not os.path.exists("/tmp/should-not-exist-aisci")


def test_unsandboxed_when_the_operator_says_so(bus, proj):
    [out] = results_of(bus, [("run", {"command": "python3 train.py; ls ../; echo y > out.txt"})],
                       policy=RunPolicy(sandbox="none"))
    assert out.startswith("exit code 0") and "trained" in out and "task" in out and "submission" not in out
    assert proj.as_role("viewer").read("code/out.txt") == "y\n"


def test_the_pools_agent_actors_get_the_executor_and_answer_run(ray_cluster, bus, proj):
    from actors.llm.config import LLMConfig
    from actors.pool import AgentPool

    script = [reply(calls=[("run", {"command": "python3 train.py"})]).model_dump(),
              reply(calls=[("finish", {"summary": "ok"})]).model_dump()]
    pool = AgentPool(1, bus.config, LLMConfig(backend="scripted", script={"q1": script}),
                     executor=SandboxExecutor(bus.config, RunPolicy(sandbox="none")))
    result = pool.run("iris", Subtask(id="q1", role="coder", goal="check"))
    assert result.status == "finished"
    viewer = proj.as_role("viewer")
    transcripts = [viewer.read(p) for p in viewer.list("logs/llm/coder-q1")]
    assert any("exit code 0" in t and "trained" in t for t in transcripts)
