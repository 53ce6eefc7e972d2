"""Escapes from the experiment sandbox, tried for real (part 1: what a run can reach):
a hostile run as root on this machine (CI runs as root), real bubblewrap, real
processes, no mocks. Each test names the failure it guards against; every run goes
through the public runner with an operator policy. Part 2: test_sandbox_limits.py.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cluster import sandbox

from .sandbox_helpers import (
    CHECKOUT,
    SHIPPED_ANSWERS,
    log,
    needs_bwrap,
    needs_root,
    run,
)

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


@pytest.mark.slow
@needs_bwrap
def test_shipped_answers_are_out_of_reach_by_path_and_through_git(bus, proj):
    answers = SHIPPED_ANSWERS.read_text()
    marker = "\n".join(answers.splitlines()[1:6])
    attempts = {
        "by-path": f"cat {SHIPPED_ANSWERS}",
        "through-git": f"git -C {CHECKOUT} show HEAD:benchmarks/mlebench/tasks/diabetes/prepared/private/answers.csv",
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
    proj.as_role("writer").write("report/selfcheck.json", "draft\n")
    result = run(bus, "look", f"ls -a {bus.root}; echo --; ls {bus.root}/projects; echo --; ls {proj.dir}")
    assert result["status"] == "ok", result
    root, projects, folders = log(proj, "look").split("--\n")
    assert root.split() == [".", "..", "projects"]  # no index/, objects/, operator/, scratch/
    assert projects.split() == ["exp"]
    assert sorted(folders.split()) == ["analysis", "code", "experiments", "logs", "plan", "task"]
    for name, command in {"report": f"cat {proj.dir}/report/selfcheck.json",
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
        run(bus, "who", "id -u; grep CapEff /proc/self/status; cat /proc/self/uid_map; unshare -r true "
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
