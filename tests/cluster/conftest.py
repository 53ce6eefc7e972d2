"""Fixtures of the sandbox tests (test_sandbox.py, test_sandbox_limits.py)."""

import secrets
import shutil
from pathlib import Path

import pytest


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
