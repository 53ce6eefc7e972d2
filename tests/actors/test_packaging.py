"""A non-editable install (`pip install .`, a wheel on a cluster's nodes) carries every
file the agents load at run time: the role prompts and the baseline's templates. (A
wheel without actors/prompts/*.md was found: every agent would fail on its first step.)"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_data_file_the_agents_load_is_package_data():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["actors"]
    actors = ROOT / "actors"
    data = {p for p in actors.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    covered = {p for g in globs for p in actors.glob(g) if p.is_file()}
    assert {p.name for p in data if p.parent.name == "prompts"} >= {"system.md", "orchestrator.md", "writer.md"}
    assert not data - covered, sorted(str(p.relative_to(ROOT)) for p in data - covered)
