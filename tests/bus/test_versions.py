"""Durable, versioned writes: nothing an agent overwrites is lost."""

import os

import pytest

from bus import BusFault, NotFound


def test_overwrite_keeps_every_version(project):
    coder = project.as_role("coder")
    rows = [coder.write("code/train.py", f"version {i}\n", summary=f"v{i}") for i in range(3)]
    assert coder.read("code/train.py") == "version 2\n"
    versions = coder.versions("code/train.py").to_pylist()
    assert [v["version"] for v in versions] == [r["seq"] for r in rows]
    for i, r in enumerate(rows):
        assert coder.read_version("code/train.py", r["version"]) == f"version {i}\n".encode()
    with pytest.raises(NotFound, match="no version"):
        coder.read_version("code/train.py", 999)


def test_workspace_files_are_plain_files_shared_with_the_store(project):
    coder = project.as_role("coder")
    row = coder.write("code/a.py", "print('a')\n")
    path = project.dir / "code" / "a.py"
    assert path.read_text() == "print('a')\n"
    stored = project.bus.store.path(project.name, row["hash"])
    assert os.path.samefile(path, stored)  # one inode: the store costs a link, not a copy
    assert not os.stat(path).st_mode & 0o222  # read-only: edits go through new bus writes


def test_identical_content_is_stored_once(project):
    coder = project.as_role("coder")
    a = coder.write("code/a.py", "same\n")
    b = coder.write("code/b.py", "same\n")
    assert a["hash"] == b["hash"]
    assert os.path.samefile(project.dir / "code" / "a.py", project.dir / "code" / "b.py")


def test_appends_are_versions_and_prefixes(project):
    coder = project.as_role("coder")
    r1 = coder.append("logs/implementation.md", "- one\n")
    r2 = coder.append("logs/implementation.md", "- two\n")
    assert (r1["offset"], r2["offset"]) == (0, 6)
    assert coder.read("logs/implementation.md") == "- one\n- two\n"
    assert coder.read_version("logs/implementation.md", r1["version"]) == b"- one\n"
    entry = {r["path"]: r for r in coder.workspace_map().to_pylist()}["logs/implementation.md"]
    assert (entry["version"], entry["size"]) == (r2["seq"], 12)


def test_append_to_a_bus_written_file_leaves_the_stored_version_intact(project):
    coder = project.as_role("coder")
    w = coder.write("logs/implementation.md", "header\n")
    coder.append("logs/implementation.md", "- more\n")
    assert coder.read("logs/implementation.md") == "header\n- more\n"
    assert coder.read_version("logs/implementation.md", w["version"]) == b"header\n"


def test_overwriting_a_log_or_an_outside_file_keeps_the_old_content(project):
    coder = project.as_role("coder")
    coder.append("logs/implementation.md", "- one\n")
    coder.write("logs/implementation.md", "rewritten\n")
    kept = [r for r in project.events().to_pylist() if r["kind"] == "recovered"]
    assert len(kept) == 1
    assert project.bus.store.read(project.name, kept[0]["hash"]) == b"- one\n"
    # A file an experiment wrote directly is kept too when an agent replaces it.
    (project.dir / "code" / "generated.py").write_text("by hand\n")
    coder.write("code/generated.py", "by the bus\n")
    kept = [r for r in project.events().to_pylist() if r["kind"] == "recovered"]
    assert project.bus.store.read(project.name, kept[-1]["hash"]) == b"by hand\n"


def test_a_stored_version_changed_in_place_is_detected(project):
    coder = project.as_role("coder")
    r1 = coder.write("code/a.py", "one\n")
    coder.write("code/a.py", "two\n")
    stored = project.bus.store.path(project.name, r1["hash"])
    os.chmod(stored, 0o644)
    stored.write_text("tampered\n")
    with pytest.raises(BusFault, match="modified in place"):
        coder.read_version("code/a.py", r1["version"])


def test_writing_a_folder_path_is_refused(project):
    coder = project.as_role("coder")
    coder.write("code/pkg/mod.py", "x")
    with pytest.raises(Exception, match="is a folder"):
        coder.write("code/pkg", "x")
