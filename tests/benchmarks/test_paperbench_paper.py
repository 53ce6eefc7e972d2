"""Paper folders in PaperBench's layout: the shipped paper is well formed, a broken folder is
refused with one line, and an install carries what agents see and nothing the judge keeps."""

import shutil
import tomllib
from pathlib import Path

import pytest

from benchmarks.paperbench import InvalidPaper, Paper, shipped_papers

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = "scaling-knn-vs-forest"


@pytest.fixture
def folder(tmp_path):
    dst = tmp_path / SHIPPED
    shutil.copytree(shipped_papers()[SHIPPED], dst)
    return dst


def test_the_shipped_paper_is_a_well_formed_paperbench_paper():
    paper = Paper(shipped_papers()[SHIPPED])
    rubric = paper.rubric
    assert paper.id == SHIPPED == paper.root.name and paper.title.startswith("Scale Before")
    assert paper.paper_md is not None and "Table 1" in paper.paper_text
    assert paper.blacklist == [] and paper.judge_addendum and "results.csv" in paper.addendum
    assert 15 <= len(rubric.leaves()) <= 30
    assert {c: len(rubric.leaves(c)) for c in ("Code Development", "Code Execution", "Result Analysis")} == {
        "Code Development": 10, "Code Execution": 5, "Result Analysis": 8}
    nodes = [n for _, n in rubric.walk()]
    assert len({n.id for n in nodes}) == len(nodes)  # unique ids
    assert any(n.weight == 0 and not n.is_leaf for n in nodes)  # the out-of-scope appendix
    assert all(n.finegrained_task_category for n in rubric.leaves())


def test_the_agent_sees_the_paper_but_not_the_rubric_or_the_judge_addendum():
    paper = Paper(shipped_papers()[SHIPPED])
    names = {p.name for p in paper.agent_files()}
    assert names == {"paper.md", "addendum.md", "blacklist.txt"}


def test_the_install_ships_what_agents_see_and_never_what_grades():
    """As benchmarks.mlebench keeps answers out of site-packages (which a run can read), the
    paper's rubric.json and judge.addendum.md stay in the checkout."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["benchmarks.paperbench"]
    lib = ROOT / "benchmarks" / "paperbench"
    installed = {p for g in globs for p in lib.glob(g) if p.is_file()}
    assert not {p.name for p in installed} & {"rubric.json", "judge.addendum.md"}
    for paper_dir in shipped_papers().values():
        assert set(Paper(paper_dir).agent_files()) <= installed  # everything an agent is given is installed
        assert (paper_dir / "config.yaml") in installed


def test_an_installed_copy_without_its_rubric_is_refused_with_the_reason(tmp_path):
    site = tmp_path / "site-packages" / SHIPPED
    shutil.copytree(shipped_papers()[SHIPPED], site)
    (site / "rubric.json").unlink()
    with pytest.raises(InvalidPaper, match="grade from a checkout"):
        Paper(site)


@pytest.mark.parametrize(("breakage", "says"), [
    (lambda f: (f / "addendum.md").unlink(), "addendum.md: missing"),
    (lambda f: (f / "blacklist.txt").unlink(), "blacklist.txt: missing"),
    (lambda f: (f / "rubric.json").unlink(), "rubric.json: cannot read the rubric"),
    (lambda f: (f / "paper.md").unlink(), "neither paper.md nor paper.pdf"),
    (lambda f: (f / "config.yaml").write_text("id: [unclosed\n"), "config.yaml: not YAML"),
    (lambda f: (f / "config.yaml").write_text("id: x\n"), "config.yaml: needs a non-empty string `title`"),
    (lambda f: (f / "config.yaml").write_text("- a list\n"), "should be a mapping"),
    (lambda f: (f / "paper.md").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n"),
     "Git LFS pointer"),
    (lambda f: (f / "rubric.json").write_text('{"id": "r", "requirements": "x", "weight": 1, "sub_tasks": []}'),
     "root (id 'r'): a leaf needs a task_category"),
])
def test_a_broken_paper_folder_is_one_line_saying_what_to_fix(folder, breakage, says):
    breakage(folder)
    with pytest.raises(InvalidPaper) as e:
        Paper(folder)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_optional_parts_may_be_absent(folder):
    (folder / "judge.addendum.md").unlink()
    (folder / "paper.md").rename(folder / "paper.pdf")  # a pdf-only folder loads; the judge needs the markdown
    paper = Paper(folder)
    assert paper.judge_addendum is None and paper.assets is None and paper.paper_md is None
    with pytest.raises(InvalidPaper, match="only paper.pdf"):
        _ = paper.paper_text


def _link(path: Path, target: str) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


@pytest.mark.parametrize("part", ["paper.md", "rubric.json", "config.yaml", "addendum.md", "blacklist.txt",
                                  "judge.addendum.md", "assets", "assets/figure.txt", "assets/deep/dir"])
def test_a_symbolic_link_in_a_paper_folder_is_refused_naming_it(folder, part, tmp_path):
    """The breaker: a paper.md linked to /etc/shadow went into every judge prompt, and an
    assets/ linked to /etc onto the bus. Any link among the parts, or under assets/, is
    one line naming it and its target; nothing is read through it."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "shadow").write_text("root:*:20228:0:99999:7:::\n")
    target = secret if part in ("assets", "assets/deep/dir") else secret / "shadow"
    (folder / part).parent.mkdir(parents=True, exist_ok=True)
    _link(folder / part, str(target))
    with pytest.raises(InvalidPaper) as e:
        Paper(folder)
    said = str(e.value)
    assert f"{part}: a symbolic link (to {target})" in said and "\n" not in said and "root:*" not in said, said
