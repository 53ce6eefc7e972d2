"""Escapes from the experiment sandbox, tried for real: a hostile run as root on this
machine (CI runs as root), real bubblewrap, real processes, no mocks.

Each test names the failure it guards against; every run goes through the public
runner (``cluster.experiments.run_experiment``) with an operator policy.
"""

import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cluster
from actors.runs import RunPolicy, make_spec
from cluster import sandbox
from cluster.experiments import run_experiment

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="escapes as root need root (CI runs as root)")

CHECKOUT = Path(cluster.__file__).resolve().parents[1]
SHIPPED_ANSWERS = CHECKOUT / "benchmarks" / "tasks" / "diabetes" / "prepared" / "private" / "answers.csv"


def run(bus, name, command, hide=(), project="exp", **settings):
    """Run ``command`` as run ``name``: ``settings`` are the operator's policy fields
    (sandbox, network, tmp_mb...) and the request's resources (memory_mb, gpus...)."""
    fields = set(RunPolicy.model_fields)
    policy = RunPolicy(**{k: v for k, v in settings.items() if k in fields})
    resources = {k: v for k, v in settings.items() if k not in fields}
    spec = make_spec(name, command, policy, hidden=tuple(str(h) for h in hide), **resources)
    return run_experiment(bus.config.model_dump(mode="json"), project, spec.model_dump(mode="json"))


def log(proj, name) -> str:
    return proj.as_role("viewer").read(f"experiments/{name}/output.log")


def gone(marker: str, wait_s: float = 3.0) -> bool:
    """No process whose command line holds ``marker`` (waits a little: SIGKILL is async)."""
    deadline = time.monotonic() + wait_s
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def proj(bus):
    p = bus.create_project("exp")
    p.as_role("coder").write("code/train.py", "import json\njson.dump({'score': 0.5}, open('metrics.json', 'w'))\n")
    return p


@pytest.fixture
def planted(monkeypatch):
    """Secrets where a hostile run would look: a home folder with keys (HOME points at
    it), another task's answers, this task's answers (to be hidden), a Ray session in
    the host's /tmp, a folder outside the bus. Outside /tmp, so that only the sandbox's
    allow-list keeps them out."""
    tag = secrets.token_hex(4)
    base = Path(f"/var/tmp/aisci-planted-{tag}")
    files = {
        "home/.ssh/id_rsa": f"FAKE-SSH-KEY-{tag}", "home/.kaggle/kaggle.json": f"KAGGLE-{tag}",
        "home/.config/gh/hosts.yml": f"GH-TOKEN-{tag}", "home/.gnupg/private-keys-v1.d/k.key": f"GPG-{tag}",
        "home/.ray/auth_token": f"RAY-AUTH-{tag}", "other-task/prepared/private/answers.csv": f"OTHER-ANSWERS-{tag}",
        "this-task/prepared/private/answers.csv": f"HIDDEN-ANSWERS-{tag}",
    }
    for rel, text in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)
    (base / "outside").mkdir()
    ray_tmp = Path(f"/tmp/aisci-planted-ray-{tag}/session_latest")
    ray_tmp.mkdir(parents=True)
    (ray_tmp / "auth_token").write_text(f"RAY-SESSION-{tag}")
    monkeypatch.setenv("HOME", str(base / "home"))
    yield {"tag": tag, "base": base, "home": base / "home", "hidden": base / "this-task" / "prepared" / "private",
           "ray_tmp": ray_tmp, "secrets": [*files.values(), f"RAY-SESSION-{tag}"]}
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(ray_tmp.parent, ignore_errors=True)


# -- 1. An allow-list: a run sees its folders, the interpreter, the system; nothing else --------

WALK = r"""
import os, sys
prune = set(sys.argv[1:]) | {"/proc", "/sys", "/dev", "/usr"}
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in prune and d not in (".venv", "site-packages")]
    for name in dirs + files:
        print(os.path.join(root, name))
"""


@needs_bwrap
def test_a_run_walking_the_filesystem_finds_no_answers_keys_or_checkout(bus, proj, planted):
    proj.as_role("coder").write("code/walk.py", WALK)
    prefixes = " ".join(sorted({sys.prefix, sys.base_prefix}))
    result = run(bus, "walk", f"python3 {proj.dir}/code/walk.py {prefixes}", hide=[planted["hidden"]],
                 output_cap_bytes=50_000_000, timeout_s=120)
    assert result["status"] == "ok", result
    seen = log(proj, "walk").splitlines()
    assert not [p for p in seen if "prepared/private" in p]  # no task's answers, anywhere
    assert not [p for p in seen if p.startswith(str(planted["base"])) or "aisci-planted" in p]
    assert not [p for p in seen if p.startswith(str(CHECKOUT) + "/") and not p.startswith(str(CHECKOUT / ".venv"))]
    assert not [p for p in seen if p.startswith(str(bus.root) + "/") and not p.startswith(str(proj.dir))
                and not str(proj.dir).startswith(p + "/")]  # the project's folder and the folders above it
    for folder in ("submission", "report"):
        assert str(proj.dir / folder) not in seen
    etc = {p.split("/")[2] for p in seen if p.startswith("/etc/")}
    allowed = {e.split("/")[0] for e in sandbox.ETC_ENTRIES} | {"passwd", "group"}
    assert etc <= allowed, etc - allowed
    assert "/etc/shadow" not in seen and "/etc/resolv.conf" not in seen  # resolv.conf only with network


@needs_bwrap
def test_shipped_answers_are_out_of_reach_by_path_and_through_git(bus, proj):
    answers = SHIPPED_ANSWERS.read_text()
    marker = "\n".join(answers.splitlines()[1:6])
    attempts = {
        "by-path": f"cat {SHIPPED_ANSWERS}",
        "through-git": f"git -C {CHECKOUT} show HEAD:benchmarks/tasks/diabetes/prepared/private/answers.csv",
        "by-import": "python3 -c 'import benchmarks, os; print(open(os.path.join(benchmarks.__path__[0], "
                     "\"tasks/diabetes/prepared/private/answers.csv\")).read())'",
    }
    for name, command in attempts.items():
        result = run(bus, name, command)
        assert result["status"] == "failed", (name, result["output_tail"])
        assert marker not in log(proj, name), name
    pandas = run(bus, "libraries", "python3 -c 'import pandas, sklearn; print(\"libraries ok\")'")
    assert pandas["status"] == "ok", pandas  # ...while the interpreter and its libraries work


@needs_bwrap
def test_a_run_sees_only_its_projects_readable_folders(bus, proj):
    other = bus.create_project("other")
    other.as_role("coder").write("code/secret.py", "SECRET = 1\n")
    proj.as_role("writer").write("report/draft.md", "draft\n")
    result = run(bus, "look", f"ls -a {bus.root}; echo --; ls {bus.root}/projects; echo --; ls {proj.dir}")
    assert result["status"] == "ok", result
    root, projects, folders = log(proj, "look").split("--\n")
    assert root.split() == [".", "..", "projects"]  # no index/, objects/, operator/, scratch/
    assert projects.split() == ["exp"]
    assert sorted(folders.split()) == ["analysis", "code", "experiments", "logs", "plan", "task"]
    for name, command in {"report": f"cat {proj.dir}/report/draft.md",
                          "other": f"cat {other.dir}/code/secret.py",
                          "write-code": f"echo x >> {proj.dir}/code/train.py"}.items():
        assert run(bus, name, command)["status"] == "failed", name


@needs_bwrap
def test_mounts_holding_hidden_or_private_answers_are_refused(bus, proj, planted):
    hidden = planted["hidden"]
    data = planted["base"] / "data"
    (data / "train.csv").parent.mkdir(parents=True)
    (data / "train.csv").write_text("x,y\n1,2\n")
    cases = {"contains-hidden": hidden.parent.parent, "inside-hidden": hidden / "answers.csv",
             "the-hidden": hidden, "holds-other-answers": planted["base"] / "other-task",
             "the-bus": bus.root, "another-project": bus.root / "projects"}
    for name, mount in cases.items():
        result = run(bus, name, "ls /", hide=[hidden], ro_mounts=(str(mount),))
        assert result["status"] == "refused", (name, result)
        assert any(w in result["reason"] for w in ("hidden", "private", "the bus")), result["reason"]
    ok = run(bus, "dataset", f"cat {data}/train.csv && touch {data}/x", hide=[hidden], ro_mounts=(str(data),))
    assert ok["status"] == "failed" and "x,y" in ok["output_tail"]  # readable, not writable
    assert not (data / "x").exists()
    # A hidden path that does not exist hides nothing (an installed task without answers).
    absent = run(bus, "absent", f"cat {data}/train.csv", hide=[data / "prepared" / "private"], ro_mounts=(str(data),))
    assert absent["status"] == "ok", absent


# -- 2. Root inside the sandbox is not root ----------------------------------------------------

@needs_bwrap
@needs_root
def test_root_cannot_unmount_remount_or_read_what_root_owns(bus, proj, planted):
    tag, home, hidden = planted["tag"], planted["home"], planted["hidden"]
    secret = proj.dir / "task" / "root-only.txt"
    secret.write_text(f"ROOT-ONLY-{tag}")
    secret.chmod(0o600)
    host = subprocess.Popen(["bash", "-c", f"exec -a aisci-host-{tag} sleep 60"])
    try:
        attempts = {
            "umount-hidden": f"umount -l {hidden}; cat {hidden}/answers.csv",
            "umount-ssh": f"umount -l {home}/.ssh; cat {home}/.ssh/id_rsa",
            "ray-token": f"umount -l {home}/.ray; cat {home}/.ray/auth_token; cat ~root/.ray/auth_token",
            "ray-session": f"umount -l /tmp; cat {planted['ray_tmp']}/auth_token",
            "root-0600": f"cat {secret}",
            "remount-rw": f"mount -o remount,rw /; mount -o remount,rw {proj.dir}/code; "
                          f"touch {planted['base']}/outside/planted; echo hacked >> {proj.dir}/code/train.py",
            "host-pids": "umount -l /proc; cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
        }
        for name, command in attempts.items():
            run(bus, name, command + "; true", hide=[hidden])
            seen = log(proj, name)
            assert not [s for s in planted["secrets"] + [f"ROOT-ONLY-{tag}", f"aisci-host-{tag}"] if s in seen], seen
        assert not (planted["base"] / "outside" / "planted").exists()
        assert "hacked" not in (proj.dir / "code" / "train.py").read_text()
        who = run(bus, "who", "id -u; grep CapEff /proc/self/status; cat /proc/self/uid_map; unshare -r true "
                              "&& echo NESTED-USERNS")
        out = log(proj, "who").split()
        assert out[0] == "1000" and out[1:3] == ["CapEff:", "0000000000000000"], out
        inside, outside = int(out[3]), int(out[4])
        assert inside == 1000 and outside != 0  # the run's host identity is not root either
        assert "NESTED-USERNS" not in log(proj, "who")
    finally:
        host.kill()
        host.wait()


# -- 3. Secrets reach no run: the environment is an allow-list ----------------------------------

ENV_DUMP = "python3 -c 'import json, os; print(\"ENV=\" + json.dumps(dict(os.environ)))'"
BASH_OWN = {"PWD", "SHLVL", "_", "OLDPWD"}  # bash sets these itself


@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_only_the_allowed_environment_reaches_a_run(bus, proj, monkeypatch, mode):
    leaks = {"DATABASE_URL": "postgres://app:hunter2@db/prod", "GH_PAT": "ghp_leak", "SENTRY_DSN": "https://k@s.io/1",
             "GOOGLE_APPLICATION_CREDENTIALS": "/secrets/sa.json", "KAGGLE_USERNAME": "me", "RAY_ADDRESS": "auto"}
    for k, v in leaks.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("WANDB_PROJECT", "sweeps")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    result = run(bus, "env", ENV_DUMP, sandbox=mode, env=("WANDB_PROJECT",), seed=7, cpus=2)
    assert result["status"] == "ok", result
    env = json.loads(log(proj, "env").split("ENV=", 1)[1])
    assert not set(leaks) & set(env)
    assert set(env) - BASH_OWN == {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONUNBUFFERED", "OMP_NUM_THREADS",
                                   "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "AISCI_SEED", "AISCI_RUN_ID",
                                   "CUDA_VISIBLE_DEVICES", "WANDB_PROJECT"}
    assert (env["AISCI_SEED"], env["AISCI_RUN_ID"], env["OMP_NUM_THREADS"], env["WANDB_PROJECT"]) == \
        ("7", "env", "2", "sweeps")
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)


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
    result = run(bus, "tmp", "head -c 100000000 /dev/zero > /tmp/x; echo tmp=$?; rm -f /tmp/x; "
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
    result = run(bus, "forks", f"python3 {proj.dir}/code/forks.py", max_procs=64)
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
