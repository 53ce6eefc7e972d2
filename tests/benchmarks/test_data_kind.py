"""The data kind and where a task's parts are, derived from its public files
(benchmarks/mlebench/data.py), and the one-line reasons where they cannot be."""

import json
import shutil

import pandas as pd
import pytest

from benchmarks.mlebench.task import (
    InvalidTask,
    Task,
    TaskOptions,
    open_task,
    shipped_tasks,
)
from tests.benchmarks import folders
from tests.benchmarks.test_mlebench_layout import mlebench  # noqa: F401  (the fixture: a prepared data dir)


def test_each_shape_is_derived(tmp_path):
    spec = {name: Task(build(tmp_path)).data for name, build in folders.BUILDERS.items()}
    assert spec["text-classes"].kind == "text" and spec["text-classes"].text_columns == ["passage"]
    assert spec["text-classes"].label_column == "writer"  # class names with spaces, commas, quotes, slashes
    assert spec["text-labels"].text_columns == ["comment_text"] and spec["text-labels"].label_column is None
    assert spec["table-values"].kind == "tabular" and spec["table-values"].feature_columns == ["x0", "x1", "x2", "group"]
    by_id = spec["images-labels"]  # dog-breed: labels.csv, ids without their extension, test ids from the sample
    assert (by_id.kind, by_id.train_csv, by_id.label_column, by_id.test_csv) == \
        ("images", "labels.csv", "breed", "sample_submission.csv")
    assert (by_id.train_images.folder, by_id.train_images.suffix, by_id.test_images.folder) == ("train", ".png", "test")
    named = spec["images-extension"]  # the id is the file's name: no suffix; one folder for both splits
    assert (named.train_images.folder, named.train_images.suffix) == ("images", "")
    assert (named.test_images.folder, named.train_id_column) == ("images", "image_id")


def test_the_shipped_tasks_say_their_data_in_task_json():
    kinds = {name: json.loads(Task(path).summary_json())["data"] for name, path in shipped_tasks().items()}
    assert kinds == {"breast-cancer": "tabular", "diabetes": "tabular", "digits": "tabular", "docstrings": "text",
                     "glyphs": "images"}
    glyphs = Task(shipped_tasks()["glyphs"]).summary()["inputs"]
    assert glyphs["label_column"] == "letter" and glyphs["train_images"] == {"folder": "train", "suffix": ".png"}


def test_a_text_id_column_is_its_text(tmp_path):
    """detecting-insults: the id column (`Comment`) is the text itself."""
    rows = [f"you are a very {w} person, said someone on the forum today" for w in ("kind", "rude", "nice", "mean")]
    pub = tmp_path / "insults" / "prepared" / "public"
    folders.competition(tmp_path, "insults", "auc-roc",
                        pd.DataFrame({"Insult": [0, 1, 0, 1], "Date": "2012", "Comment": rows}),
                        pd.DataFrame({"Comment": rows[:2], "Insult": [0, 1]}),
                        pd.DataFrame({"Comment": rows[:2], "Insult": 0.5}),
                        pd.DataFrame({"Date": "2012", "Comment": rows[:2]}))
    assert (pub / "test.csv").is_file()
    data = Task(tmp_path / "insults", options=None).data
    assert data.kind == "text" and data.text_columns == ["Comment"]


def test_what_cannot_be_derived_is_one_line_saying_what_is_missing(tmp_path):
    folder = folders.images_named_by_id(tmp_path)
    public = folder / "prepared" / "public"
    (public / "train").rename(public / "pictures")
    assert Task(folder).data.train_images.folder == "pictures"  # a folder is found by what it holds, not its name
    for f in (public / "pictures").iterdir():
        f.rename(f.with_name(f"x{f.name}"))
    with pytest.raises(InvalidTask, match=r"pictures/ holds images, but no training id of labels.csv"):
        Task(folder).data
    summary = Task(folder).summary()  # an agent is still told what is missing
    assert summary["data"] is None and "pictures/" in summary["data_unknown"]
    shutil.rmtree(public / "pictures")
    shutil.rmtree(public / "test")
    (public / "train.zip").write_bytes(b"PK")
    with pytest.raises(InvalidTask, match=r"nothing to learn from.*train.zip: unpack it"):
        Task(folder).data
    (public / "labels.csv").unlink()
    with pytest.raises(InvalidTask, match="no training table"):
        Task(folder).data
    # the labels are not where the submission's columns say
    table = folders.table_values(tmp_path / "t")
    pd.read_csv(table / "prepared" / "public" / "train.csv").rename(columns={"gap": "band_gap"}).to_csv(
        table / "prepared" / "public" / "train.csv", index=False)
    with pytest.raises(InvalidTask, match=r"lacks the target column\(s\) \['gap'\]"):
        Task(table).data


def test_test_ids_without_images_are_refused(tmp_path):
    folder = folders.images_named_by_id(tmp_path)
    shutil.rmtree(folder / "prepared" / "public" / "test")
    with pytest.raises(InvalidTask, match="no folder holds a file per test id of sample_submission.csv"):
        Task(folder).data


def test_competitions_as_mlebench_prepares_them(mlebench):  # noqa: F811
    data, _ = mlebench
    spooky = open_task("spooky-author-identification", TaskOptions(data_dir=str(data))).data
    assert (spooky.kind, spooky.text_columns, spooky.label_column) == ("text", ["text"], "author")
    nomad = open_task("nomad2018-predict-transparent-conductors", TaskOptions(data_dir=str(data))).data
    assert nomad.kind == "tabular" and "spacegroup" in nomad.feature_columns and nomad.label_column is None


@pytest.mark.parametrize("which", ["sample_submission.csv", "train.csv"])
def test_a_task_file_that_is_not_utf8_is_one_invalid_task(tmp_path, which):
    """Latin-1 files (a breaker's `café` labels) were a UnicodeDecodeError traceback from
    the sample's read; now one line naming the file and what to do, for every CSV read."""
    from benchmarks.mlebench.task import shipped_tasks
    task_dir = tmp_path / "t"
    shutil.copytree(shipped_tasks()["breast-cancer"], task_dir)
    path = task_dir / "prepared" / "public" / which
    path.write_bytes(path.read_bytes().replace(b"\n", "\ncaf\u00e9,".encode("latin-1"), 1))
    with pytest.raises(InvalidTask, match="UTF-8") as e:
        Task(task_dir).data  # noqa: B018  (derived on first use)
    assert which in str(e.value) and len(str(e.value).splitlines()) == 1


def test_a_training_table_left_in_its_zip_is_named(tmp_path):
    """MLE-bench's raw downloads ship train.zip: "no training table ... found no other
    CSV" said nothing of the zip beside it."""
    task_dir = tmp_path / "t"
    shutil.copytree(shipped_tasks()["digits"], task_dir)
    public = task_dir / "prepared" / "public"
    shutil.make_archive(str(public / "train"), "zip", public, "train.csv")
    (public / "train.csv").unlink()
    with pytest.raises(InvalidTask, match=r"no training table.*holds train.zip: unpack it there \(unzip -d ") as e:
        Task(task_dir).data  # noqa: B018
    assert len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize("which", ["sample_submission.csv", "train.csv"])
def test_a_column_name_with_spaces_around_it_is_said_as_such(tmp_path, which):
    """`id, target` in a header: the target column is ' target', which the labels'
    column never matched; the message showed [' target'] and left the user to spot it."""
    task_dir = tmp_path / "t"
    shutil.copytree(shipped_tasks()["digits"], task_dir)
    path = task_dir / "prepared" / "public" / which
    lines = path.read_text().split("\n", 1)
    path.write_text(lines[0].replace(",target", ", target") + "\n" + lines[1])
    with pytest.raises(InvalidTask, match=r"the column name ' target' has spaces around it") as e:
        Task(task_dir).data  # noqa: B018
    assert which in str(e.value) and len(str(e.value).splitlines()) == 1
