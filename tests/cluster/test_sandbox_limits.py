"""Escapes from the experiment sandbox, tried for real (part 2: what a run can do to
the framework and the machine: links and FIFOs, survivors, quotas, processes, the
network, a sandbox that cannot start). Part 1: test_sandbox.py.
"""

import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cluster import sandbox

from .sandbox_helpers import gone, log, needs_bwrap, run

# -- 4. The framework never follows a run's link, never blocks on its file, never reads unbounded -

@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_a_run_cannot_redirect_the_frameworks_files_through_links(bus, proj, mode):
    description = (proj.dir / "task" / "description.md")
    proj.as_role("system").write("task/description.md", "the task\n")
    code = (proj.dir / "code" / "train.py").read_text()
    command = ("rm -f output.log result.json spec.json; ln -s ../../task/description.md output.log; "
               "ln -s ../../code/train.py result.json; ln -s /etc/hostname spec.json; "
               "echo INJECTED; python3 ../../code/train.py")
    result = run(bus, "links", command, sandbox=mode)
    assert result["status"] == "ok" and result["metrics"] == {"score": 0.5}, result
    assert description.read_text() == "the task\n" and (proj.dir / "code" / "train.py").read_text() == code
    viewer = proj.as_role("viewer")
    assert viewer.read("experiments/links/output.log") == "INJECTED\n"  # the run's output, nothing else
    assert json.loads(viewer.read("experiments/links/result.json"))["status"] == "ok"
    assert set(result["skipped"]) >= {"output.log", "result.json", "spec.json"}


@needs_bwrap
def test_links_fifos_and_big_files_are_listed_not_ingested(bus, proj):
    command = ("ln -s /etc/passwd stolen.txt; ln -s ../../.. up; mkfifo pipe.csv; echo 1,2 > small.csv; "
               "head -c 5000000 /dev/zero > big.bin; mkdir sub; sleep 300 & echo started")
    t0 = time.monotonic()
    result = run(bus, "outputs", command, timeout_s=60)
    assert result["status"] == "ok" and time.monotonic() - t0 < 20, result
    viewer = proj.as_role("viewer")
    assert viewer.read("experiments/outputs/small.csv") == "1,2\n"
    for name in ("stolen.txt", "up", "pipe.csv", "big.bin"):
        assert not viewer.exists(f"experiments/outputs/{name}"), name
    assert {"stolen.txt", "up", "pipe.csv"} <= set(result["skipped"])
    assert "link" in result["skipped"]["stolen.txt"] and "FIFO" in result["skipped"]["pipe.csv"]
    assert {"name": "big.bin", "size_bytes": 5_000_000} in result["left_in_scratch"]


@needs_bwrap
def test_a_huge_or_blocking_metrics_json_neither_bloats_nor_hangs_the_runner(bus, proj):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    huge = run(bus, "huge", "truncate -s 1G metrics.json")
    assert huge["status"] == "invalid" and "metrics.json" in huge["reason"], huge
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: not the file's 1 GB
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(run(bus, "fifo", "mkfifo metrics.json")), daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # unblock the runner stuck on the FIFO, then fail
        fifos = list(bus.root.rglob("fifo/metrics.json"))
        for fifo in fifos:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert outcome.get("status") == "invalid" and "metrics.json" in outcome["reason"], outcome
    linked = run(bus, "linked", "echo '{\"score\": 1}' > /tmp/m.json; ln -s /tmp/m.json metrics.json")
    assert linked["status"] == "invalid" and linked["metrics"] == {}, linked


@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_no_process_outlives_its_run(bus, proj, mode):
    tag = secrets.token_hex(4)
    # Names quoted apart: only the exec'd sleeps match, not the shells that start them.
    command = (f"bash -c 'exec -a aisci-\"\"bg-{tag} sleep 120' & "
               f"setsid bash -c 'exec -a aisci-\"\"sid-{tag} sleep 120' & "
               f"(trap '' TERM HUP; exec -a aisci-\"\"nohup-{tag} sleep 120) & echo launched")
    result = run(bus, "orphans", command, sandbox=mode)
    assert result["status"] == "ok", result
    assert gone(f"aisci-[a-z]*-{tag}"), subprocess.run(["pgrep", "-af", tag], capture_output=True, text=True).stdout
    slow = run(bus, "slow", f"bash -c 'exec -a aisci-\"\"slow-{tag} sleep 120' & sleep 60", sandbox=mode, timeout_s=1)
    assert slow["status"] == "timeout" and gone(f"aisci-slow-{tag}")


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_the_run_is_killed_when_the_runner_raises(bus, proj, mode):
    tag = secrets.token_hex(4)
    errors, checked = [], threading.Event()

    def target():
        try:
            run(bus, "doomed", f"bash -c 'exec -a aisci-\"\"doomed-{tag} sleep 120' & "
                               "while :; do echo tick; sleep 0.2; done", sandbox=mode, timeout_s=60)
        except Exception as e:  # noqa: BLE001 - the runner's own fault is what this test provokes
            errors.append(e)
        checked.wait(30)  # the runner's thread lives on: its parent-death signal is not what kills the run

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    for _ in range(200):  # the run is going: its background process exists
        if not gone(f"aisci-doomed-{tag}", wait_s=0):
            break
        time.sleep(0.05)
    log_path = proj.dir / "experiments" / "doomed" / "output.log"
    log_path.unlink()
    log_path.mkdir()  # the runner's next append to the bus fails: a system fault, raised
    for _ in range(300):
        if errors:
            break
        time.sleep(0.05)
    try:
        assert errors and gone(f"aisci-doomed-{tag}")
    finally:
        checked.set()


RUNNER = """
import sys
from actors.runs import RunPolicy, make_spec
from bus import Bus
from cluster.experiments import run_experiment
bus = Bus(sys.argv[1])
spec = make_spec("victim", sys.argv[2], RunPolicy(sandbox=sys.argv[3]))
run_experiment(bus.config.model_dump(mode="json"), "exp", spec.model_dump(mode="json"))
"""


@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_the_run_dies_with_its_runner(bus, proj, mode):
    """The runner's process SIGKILLed (its Ray worker lost): no finally runs, and still
    nothing of the run survives (the supervisor's parent-death signal)."""
    tag = secrets.token_hex(4)
    # The name is quoted apart: only the exec'd sleep matches, not the runner's argv.
    command = f"setsid bash -c 'exec -a aisci-\"\"victim-{tag} sleep 120' & sleep 120"
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(bus.root), command, mode])
    try:
        for _ in range(200):
            if not gone(f"aisci-victim-{tag}", wait_s=0):
                break
            time.sleep(0.05)
        assert not gone(f"aisci-victim-{tag}", wait_s=0)
    finally:
        runner.kill()
        runner.wait()
    assert gone(f"aisci-victim-{tag}")


# -- 5. A run cannot exhaust the machine -----------------------------------------------------

@needs_bwrap
def test_disk_quota_stops_big_writes_and_many_files(bus, proj):
    one_big = run(bus, "one-big", "dd if=/dev/zero of=big bs=1M count=1000 status=none", disk_mb=64)
    assert one_big["status"] == "failed" and "64 MB" in one_big["reason"], one_big
    assert os.stat(Path(one_big["scratch_dir"]) / "experiments" / "one-big" / "big").st_size <= 64 << 20
    many = run(bus, "many", "for i in $(seq 1 100); do head -c 8000000 /dev/zero > f$i; done; sleep 5",
               disk_mb=64)
    assert many["status"] == "failed" and "disk" in many["reason"] and many["duration_s"] < 5, many
    files = run(bus, "files", "python3 -c 'import time\nfor i in range(5000): open(f\"f{i}\", \"w\")\n"
                "time.sleep(5)'", max_files=500)
    assert files["status"] == "failed" and "500 files" in files["reason"], files


@needs_bwrap
def test_tmp_and_shared_memory_are_capped_in_ram(bus, proj):
    run(bus, "tmp", "head -c 100000000 /dev/zero > /tmp/x; echo tmp=$?; rm -f /tmp/x; "
                    "head -c 100000000 /dev/zero > /dev/shm/y; echo shm=$?; df -m /tmp | tail -1",
        tmp_mb=32, memory_mb=512)
    out = log(proj, "tmp")
    assert "tmp=1" in out and "shm=1" in out, out
    assert out.split("\n")[-2].split()[1] == "32"  # the private /tmp is a 32 MB tmpfs


FORK_BOMB = """
import os, resource, time
pids = []
try:
    for _ in range(1000):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    print("refused:", e)
print("started", len(pids), "limit", resource.getrlimit(resource.RLIMIT_NPROC)[0])
for pid in pids:
    os.kill(pid, 9)
"""


@needs_bwrap
def test_a_run_cannot_start_a_thousand_processes(bus, proj):
    proj.as_role("coder").write("code/forks.py", FORK_BOMB)
    run(bus, "forks", f"python3 {proj.dir}/code/forks.py", max_procs=64)
    out = log(proj, "forks")
    started, limit = int(out.split("started ")[1].split()[0]), int(out.split("limit ")[1].split()[0])
    assert "refused:" in out and started < 64, out
    # Root: the run has a uid of its own, so exactly max_procs. Not root: the user's
    # processes count too, so the limit is their number when the run starts + max_procs.
    assert limit == 64 if os.geteuid() == 0 else limit >= 64, out


@needs_bwrap
def test_core_dumps_are_off_and_address_space_is_capped_for_cpu_runs_only(bus, proj):
    run(bus, "cpu", "echo core=$(ulimit -c) as=$(ulimit -v) fsize=$(ulimit -f)", memory_mb=700, disk_mb=100)
    assert "core=0 as=716800 fsize=102400" in log(proj, "cpu")  # in KB
    run(bus, "gpu", "echo core=$(ulimit -c) as=$(ulimit -v)", memory_mb=700, gpus=1)
    assert "core=0 as=unlimited" in log(proj, "gpu")  # CUDA maps far more virtual memory than it uses


# -- 6. No network unless the operator allows it ----------------------------------------------

CONNECT = ("python3 -c 'import socket, sys; s = socket.socket({family}); s.settimeout(3); "
           "s.connect({address}); print(\"GOT\", s.recv(100))'")


@needs_bwrap
def test_no_network_unless_the_operator_allows_it(bus, proj):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0aisci-test-{port}")
    abstract.listen(8)

    def serve(sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.sendall(b"HOST-LISTENER")
            conn.close()

    for sock in (server, abstract):
        threading.Thread(target=serve, args=(sock,), daemon=True).start()
    tcp = CONNECT.format(family="", address=f"(\"127.0.0.1\", {port})")
    unix = CONNECT.format(family="socket.AF_UNIX", address=f"\"\\\\0aisci-test-{port}\"")
    try:
        escape = f"umount -l /proc; nsenter --net=/proc/{os.getpid()}/ns/net {tcp}"  # root's way out, before
        for name, command in {"tcp": tcp, "abstract-unix": unix, "via-host-netns": escape}.items():
            run(bus, name, command)
            assert "HOST-LISTENER" not in log(proj, name), name
        allowed = run(bus, "allowed", tcp, network=True)
        assert "HOST-LISTENER" in log(proj, "allowed"), allowed
    finally:
        server.close()
        abstract.close()


# -- 7. The sandbox asked for is the sandbox that runs ----------------------------------------

def fake_bwrap(tmp_dir: Path, script: str) -> Path:
    """A `bwrap` first on PATH, in a folder any user can reach."""
    folder = Path(f"/var/tmp/aisci-fakebin-{secrets.token_hex(4)}")
    folder.mkdir(mode=0o755)
    (folder / "bwrap").write_text("#!/bin/sh\n" + script)
    (folder / "bwrap").chmod(0o755)
    return folder


@pytest.mark.parametrize("script, why", [
    ("echo 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n", "uid map"),  # namespaces refused
    ("exit 0\n", "did not run"),  # exits 0 and runs nothing
])
def test_a_bwrap_that_cannot_sandbox_is_refused_with_a_reason(bus, proj, monkeypatch, tmp_path, script, why):
    folder = fake_bwrap(tmp_path, script)
    try:
        monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
        probe = sandbox.probe()
        assert not probe.ok and why in probe.reason and "\n" not in probe.reason, probe
        with pytest.raises(sandbox.SandboxUnavailable, match=why):
            sandbox.default_sandbox(trusted_code=False, allow_unsandboxed=False)
        assert sandbox.default_sandbox(trusted_code=False, allow_unsandboxed=True) == "none"
        result = run(bus, "hello", "echo hello; echo '{\"cv_score\": 1}' > metrics.json")
        assert result["status"] == "refused", result
        assert "bubblewrap" in result["reason"] and "--allow-unsandboxed" in result["reason"], result["reason"]
    finally:
        shutil.rmtree(folder)


@needs_bwrap
def test_the_probe_runs_once_per_process_and_says_ok(monkeypatch):
    first = sandbox.probe()
    t0 = time.perf_counter()
    again = sandbox.probe()
    assert first.ok and again is first and time.perf_counter() - t0 < 0.01, first
    monkeypatch.setenv("PATH", "/nonexistent")
    missing = sandbox.probe()
    assert not missing.ok and "not installed" in missing.reason


@needs_bwrap
def test_a_sandbox_that_fails_for_one_run_is_refused_a_run_that_fails_is_failed(bus, proj, monkeypatch, tmp_path):
    """The probe passes (the fake hands its command to the real bwrap), the run's start
    fails: refused, with bwrap's words. A run that merely prints like bwrap and exits 1
    is a failed run: the sandbox says when it is up (its ready pipe), not the output."""
    real = shutil.which("bwrap")
    folder = fake_bwrap(tmp_path, f'case "$*" in *"-I -S -c"*) exec {real} "$@";; esac\n'
                                  "echo \"bwrap: Can't mount proc on /newroot/proc: Operation not permitted\" >&2\n"
                                  "exit 1\n")
    try:
        monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
        assert sandbox.probe().ok
        broken = run(bus, "broken", "echo hello")
        assert broken["status"] == "refused" and "Can't mount proc" in broken["reason"], broken
    finally:
        shutil.rmtree(folder)
    mimic = run(bus, "mimic", "echo \"bwrap: Can't mount proc\" >&2; exit 1")
    assert mimic["status"] == "failed", mimic
