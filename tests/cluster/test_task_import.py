"""A task folder comes onto the bus whole (issue 10, kind 8): sub-folders (images) are
imported, large data streams in (not through the 64 MiB write path), and a folder
that is not a whole task is refused before anything is written."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from actors.workspace import prompt_map
from benchmarks.mlebench.task import Task, shipped_tasks
from cluster.cli import main
from cluster.tasks import import_task


def _task_with_images(tmp_path, n: int = 3):
    root = tmp_path / "imgtask"
    shutil.copytree(shipped_tasks()["digits"], root)
    for split in ("train", "test"):
        (root / "prepared" / "public" / split).mkdir()
        for i in range(n):
            (root / "prepared" / "public" / split / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([i % 256]) * 100)
    return root


def test_sub_folders_of_the_public_data_are_imported(bus, tmp_path):
    """The issue's example: image sub-folders of prepared/public were silently dropped."""
    proj = import_task(bus, Task(_task_with_images(tmp_path)), "img")
    view = proj.as_role("analyst", "a")
    files = set(view.list("task"))
    assert {"task/train/0.png", "task/train/2.png", "task/test/1.png", "task/train.csv"} <= files, files
    assert view.read_bytes("task/test/1.png") == b"\x89PNG\r\n\x1a\n" + bytes([1]) * 100
    assert not any("private" in p or "answers" in p for p in files)
    again = import_task(bus, Task(_task_with_images(tmp_path / "again")), "img")  # idempotent: nothing new
    assert again.events().num_rows == proj.events().num_rows


def test_a_folder_of_many_files_is_one_line_of_the_map(bus, tmp_path):
    proj = import_task(bus, Task(_task_with_images(tmp_path, n=300)), "many")
    shown = prompt_map(proj.as_role("analyst", "a").workspace_map(), 8000)
    assert "task/train/  (300 files" in shown and "task/train/17.png" not in shown, shown
    assert "task/description.md" in shown and "task/train.csv" in shown


@pytest.mark.slow
def test_large_data_is_imported_not_refused(bus, tmp_path):
    """The issue's example: a 75 MB train.csv was refused with a hint about experiment
    artifacts and left a half-imported project."""
    root = tmp_path / "big"
    shutil.copytree(shipped_tasks()["breast-cancer"], root)
    rng = np.random.default_rng(0)
    big = pd.DataFrame(rng.normal(size=(360_000, 20)).round(6), columns=[f"f{i}" for i in range(20)])
    big.insert(0, "id", range(len(big)))
    big["target"] = (big.f0 > 0).astype(int)
    big.to_csv(root / "prepared" / "public" / "train.csv", index=False)
    size = (root / "prepared" / "public" / "train.csv").stat().st_size
    assert size > 64 * 2**20
    proj = import_task(bus, Task(root), "big")
    row = [e for e in proj.events().to_pylist() if e["path"] == "task/train.csv"][-1]
    assert row["size"] == size and (proj.dir / "task" / "train.csv").stat().st_size == size
    assert proj.as_role("analyst", "a").read_lines("task/train.csv", 1, 1).startswith("id,f0,")


def test_a_task_that_is_not_whole_is_refused_before_a_project_exists(tmp_path, capsys):
    root = tmp_path / "nodesc"
    shutil.copytree(shipped_tasks()["breast-cancer"], root)
    (root / "description.md").unlink()
    bus_root = tmp_path / "bus"
    assert main(["--root", str(bus_root), "run", str(root), "--project", "x"]) == 2
    err = capsys.readouterr().err
    assert "lacks description.md" in err and "Traceback" not in err
    assert not (bus_root / "projects" / "x").exists()
