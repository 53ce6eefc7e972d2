"""`aisci run ID --data-dir DIR` on MLE-bench's layout: a user's mistake is one line.

(Here, not under tests/benchmarks: those test the library, which never imports cluster/.)"""

from cluster.cli import main
from tests.benchmarks import folders
from tests.benchmarks.test_mlebench_layout import mlebench  # noqa: F401, F811  (the fixture: a prepared data dir)


def test_the_command_line_says_which_flag_in_one_line(mlebench, tmp_path, capsys):  # noqa: F811
    data, _ = mlebench
    assert main(["--root", str(tmp_path / "bus"), "run", "no-such-competition", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "prepared/" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    cid = "nomad2018-predict-transparent-conductors"
    assert main(["--root", str(tmp_path / "bus"), "run", cid, "--data-dir", str(data), "--metric", "f1"]) == 2
    err = capsys.readouterr().err
    assert "give --metric" in err and "Traceback" not in err


def test_the_baseline_refuses_data_it_cannot_make_out_in_one_line(tmp_path, capsys):
    """Before Ray starts or the project exists: image ids that name no file."""
    folder = folders.images_named_by_id(tmp_path / "data")
    for f in (folder / "prepared" / "public" / "train").iterdir():
        f.rename(f.with_name(f"x{f.name}"))
    assert main(["--root", str(tmp_path / "bus"), "run", str(folder), "--project", "p"]) == 2
    err = capsys.readouterr().err
    assert "holds images, but no training id of labels.csv" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "bus" / "projects" / "p").exists()
