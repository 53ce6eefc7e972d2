"""`aisci run ID --data-dir DIR` on MLE-bench's layout: a user's mistake is one line.

(Here, not under tests/benchmarks: those test the library, which never imports cluster/.)"""

from cluster.cli import main
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
