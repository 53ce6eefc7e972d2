"""Every refusal of the bus: path shape, scope, symlink escapes, sizes, names."""

import os

import pytest

from bus import (
    Bus,
    BusConfig,
    FileTooLarge,
    InvalidPath,
    InvalidProjectName,
    NotFound,
    Scope,
    ScopeViolation,
)
from bus.globs import compile_globs


def refused_events(project):
    return [r for r in project.events().to_pylist() if r["kind"] == "refused"]


@pytest.mark.parametrize(
    "path, needle",
    [
        ("/etc/passwd", "absolute"),
        ("~/x", "absolute"),
        ("code/../../etc/passwd", "'..'"),
        ("..", "'..'"),
        ("code\\evil.py", "backslash"),
        ("code/a\x00b.py", "NUL"),
        ("", "empty"),
        ("code/" + "x" * 300, "longer than"),
    ],
)
def test_malformed_paths_are_refused_before_io(project, path, needle):
    coder = project.as_role("coder")
    with pytest.raises(InvalidPath, match=needle):
        coder.write(path, "x")
    assert not any(p.is_file() for p in (project.dir / "code").rglob("*"))
    assert refused_events(project)[-1]["role"] == "coder"


def test_non_utf8_names_are_refused(project):
    coder = project.as_role("coder")
    bad_bytes = b"code/\xff\xfe.py"
    with pytest.raises(InvalidPath, match="UTF-8"):
        coder.write(bad_bytes, "x")
    with pytest.raises(InvalidPath, match="UTF-8"):
        coder.write(os.fsdecode(bad_bytes), "x")  # a surrogate-escaped str, as os.listdir gives
    # The refusal is still recorded, with a printable path.
    assert refused_events(project)[-1]["path"].startswith("code/")
    # Valid non-ASCII UTF-8 is fine.
    coder.write("code/données_π.py", "ok")
    assert coder.read("code/données_π.py") == "ok"


def test_write_outside_role_globs_names_role_path_and_rule(project):
    coder = project.as_role("coder", "coder-7")
    with pytest.raises(ScopeViolation) as err:
        coder.write("plan/roadmap.md", "take over")
    msg = str(err.value)
    assert "'coder'" in msg and "plan/roadmap.md" in msg and "code/**" in msg
    ev = refused_events(project)[-1]
    assert (ev["instance"], ev["path"]) == ("coder-7", "plan/roadmap.md")
    assert ev["summary"].startswith("[scope]")
    assert not (project.dir / "plan" / "roadmap.md").exists()


def test_task_is_read_only_to_every_role_but_system(project):
    project.as_role("system").write("task/description.md", "the task")
    for role in ("orchestrator", "analyst", "planner", "coder", "experimenter", "debugger", "writer"):
        view = project.as_role(role)
        assert view.read("task/description.md") == "the task"
        with pytest.raises(ScopeViolation):
            view.write("task/description.md", "changed")
    assert (project.dir / "task" / "description.md").read_text() == "the task"


def test_read_outside_scope_is_refused(project):
    project.as_role("system").write("report/final.md", "secret draft")
    analyst = project.as_role("analyst")
    with pytest.raises(ScopeViolation, match="may not read 'report/final.md'"):
        analyst.read("report/final.md")
    assert refused_events(project)[-1]["path"] == "report/final.md"


def test_symlink_escape_is_refused_for_files_and_folders(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("private answers")
    os.symlink(outside / "secret.txt", project.dir / "code" / "link.txt")
    os.symlink(outside, project.dir / "code" / "linkdir")
    coder = project.as_role("coder")
    with pytest.raises(InvalidPath, match="symlink"):
        coder.read("code/link.txt")
    with pytest.raises(InvalidPath, match="symlink"):
        coder.read("code/linkdir/secret.txt")
    with pytest.raises(InvalidPath, match="symlink"):
        coder.write("code/linkdir/planted.py", "x")
    with pytest.raises(InvalidPath, match="symlink"):
        coder.append("code/link.txt", "x")
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "private answers"


def test_symlink_inside_the_project_is_refused_too(project):
    """Links inside the project used to be followed: scopes are checked on the path as
    written, so a link to another folder carried reads and writes past them."""
    coder = project.as_role("coder")
    coder.write("code/real.py", "inside")
    os.symlink(project.dir / "code" / "real.py", project.dir / "code" / "alias.py")
    with pytest.raises(InvalidPath, match="never follows links"):
        coder.read("code/alias.py")


def test_huge_files_are_refused_with_the_setting_named(tmp_path):
    bus = Bus(config=BusConfig(root=tmp_path / "r", max_file_bytes=1000))
    coder = bus.create_project("p").as_role("coder")
    with pytest.raises(FileTooLarge, match="max_file_bytes"):
        coder.write("code/big.bin", b"x" * 1001)
    with pytest.raises(FileTooLarge):
        coder.append("logs/implementation.md", "x" * 1001)
    (bus.project("p").dir / "code" / "dropped.bin").write_bytes(b"y" * 5000)  # written outside the bus
    with pytest.raises(FileTooLarge, match="read_lines"):
        coder.read("code/dropped.bin")
    coder.write("code/ok.bin", b"x" * 1000)


@pytest.mark.parametrize("name", ["", "UPPER", "../x", "a/b", "-lead", "x" * 65, "a..b", "sp ace", 7, None, "é"])
def test_bad_project_names(bus, name):
    with pytest.raises(InvalidProjectName, match="invalid project name"):
        bus.create_project(name)
    assert bus.projects() == []


def test_unknown_project_and_missing_file(bus, project):
    with pytest.raises(NotFound, match="no project"):
        bus.project("nope")
    with pytest.raises(NotFound, match="does not exist"):
        project.as_role("coder").read("code/missing.py")


def test_custom_scope_and_glob_semantics(project):
    view = project.as_role("custom", scope=Scope(read=("**/*.md",), write=("analysis/*.md",)))
    view.write("analysis/a.md", "ok")
    with pytest.raises(ScopeViolation):
        view.write("analysis/deep/a.md", "single star does not cross folders")
    rx = compile_globs(("code/**", "**/*.md", "experiments/*/spec.json", "data/[ab]?.csv"))
    assert rx.match("code/x/y.py") and rx.match("README.md") and rx.match("a/b/c.md")
    assert rx.match("experiments/7/spec.json") and not rx.match("experiments/7/x/spec.json")
    assert rx.match("data/a1.csv") and not rx.match("data/c1.csv") and not rx.match("plan/x.txt")
