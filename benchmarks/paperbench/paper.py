"""A paper folder in PaperBench's layout (``data/papers/<paper-id>/`` in openai/frontier-evals,
project/paperbench; read there by ``paperbench/paper_registry.py``)::

    config.yaml          id and title (both non-empty strings)
    paper.md, paper.pdf  the paper: at least one; the judge reads paper.md
    addendum.md          clarifications for the reproducer and the judge (what is in scope)
    judge.addendum.md    optional: notes for the judge only (never shown to the agents)
    rubric.json          the rubric (benchmarks.paperbench.rubric)
    blacklist.txt        sites the agent may not use, one a line; ``none`` for none
    assets/              optional: the paper's figures

The folder name is where the paper is found; config.yaml's id is what it is called (one
real folder, stochastic-interpolants, says ``id: stochastic-interpolant``, so they may differ).
In frontier-evals the .md files are Git LFS objects: a checkout without ``git lfs pull``
holds pointers, which are refused here with that advice.

``Paper(folder)`` checks the folder whole; anything missing or malformed is an
``InvalidPaper`` whose one line names the file and what to do.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import yaml

from .rubric import InvalidRubric, TaskNode, load_rubric

__all__ = ["MAX_TEXT_BYTES", "InvalidPaper", "Paper", "shipped_papers"]

MAX_TEXT_BYTES = 4 * 1024 * 1024  # a paper.md is 50-200 kB; a bigger text file is not a paper folder's
LFS_POINTER = "version https://git-lfs.github.com/spec/"
PAPERS = Path(__file__).parent / "papers"


class InvalidPaper(ValueError):
    """A paper folder that cannot be used; the message is one line saying what to fix."""


def _text(path: Path, required: bool = True) -> str | None:
    if not path.is_file():
        if required:
            raise InvalidPaper(f"{path}: missing (a PaperBench paper folder has config.yaml, paper.md or paper.pdf, "
                               "addendum.md, rubric.json, blacklist.txt)")
        return None
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise InvalidPaper(f"{path}: over the {MAX_TEXT_BYTES}-byte cap for a paper's text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidPaper(f"{path}: not UTF-8 text") from None
    if text.startswith(LFS_POINTER):
        raise InvalidPaper(f"{path}: a Git LFS pointer, not the file (run `git lfs pull` in the frontier-evals checkout)")
    return text


# What a paper folder is read for; none may be a symbolic link (see ``_no_links``).
_PARTS = ("config.yaml", "paper.md", "paper.pdf", "addendum.md", "judge.addendum.md", "rubric.json", "blacklist.txt",
          "assets")


def _no_links(root: Path) -> None:
    """Refuse a paper folder with a symbolic link among its parts or under assets/: a
    paper.md linked to /etc/shadow went, whole, into every judge prompt, and an assets/
    linked to /etc onto the bus for every agent (the breaker). A paper folder holds its
    own files. Raises ``InvalidPaper`` naming the link and its target."""
    def refuse(path: Path) -> None:
        raise InvalidPaper(f"{path}: a symbolic link (to {os.readlink(path)}): a paper folder holds its own files; "
                           "copy the file or folder in")
    for name in _PARTS:
        if (root / name).is_symlink():
            refuse(root / name)
    if (root / "assets").is_dir():
        for here, dirs, names in os.walk(root / "assets"):  # links to folders are listed, never entered
            for name in dirs + names:
                if os.path.islink(os.path.join(here, name)):
                    refuse(Path(here) / name)


class Paper:
    """A paper folder, checked whole on construction.

    Attributes:
        root: the folder (absolute).
        id, title: from config.yaml.
        paper_md, paper_pdf: their paths, or None where absent (at least one is present).
        addendum: addendum.md's text; judge_addendum: judge.addendum.md's text or None.
        blacklist: the blacklisted sites (empty for ``none``).
        rubric: the parsed rubric.
        assets: the assets/ folder or None.

    Raises:
        InvalidPaper: a part is missing or malformed, or a symbolic link (one line naming
            the file).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InvalidPaper(f"{self.root}: not a folder (give a PaperBench paper folder: data/papers/<paper-id>)")
        _no_links(self.root)
        self.id, self.title = self._config()
        self.paper_md = self.root / "paper.md" if (self.root / "paper.md").is_file() else None
        self.paper_pdf = self.root / "paper.pdf" if (self.root / "paper.pdf").is_file() else None
        if self.paper_md is None and self.paper_pdf is None:
            raise InvalidPaper(f"{self.root}: has neither paper.md nor paper.pdf (the paper itself)")
        if self.paper_md is not None:
            _text(self.paper_md)  # fails early on an LFS pointer or a binary file
        self.addendum = _text(self.root / "addendum.md") or ""
        self.judge_addendum = _text(self.root / "judge.addendum.md", required=False)
        lines = [line.strip() for line in (_text(self.root / "blacklist.txt") or "").splitlines()]
        self.blacklist = [line for line in lines if line and line.lower() != "none"]
        if not (self.root / "rubric.json").is_file() and ("site-packages" in self.root.parts
                                                          or "dist-packages" in self.root.parts):
            raise InvalidPaper(f"{self.root}: no rubric.json (an installed aisci does not ship the shipped papers' "
                               "rubrics, which agents must not read: grade from a checkout, `pip install -e .`)")
        try:
            self.rubric: TaskNode = load_rubric(self.root / "rubric.json")
        except InvalidRubric as e:
            raise InvalidPaper(str(e)) from None
        self.assets = self.root / "assets" if (self.root / "assets").is_dir() else None

    def _config(self) -> tuple[str, str]:
        path = self.root / "config.yaml"
        text = _text(path)
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InvalidPaper(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(config, dict):
            raise InvalidPaper(f"{path}: should be a mapping with id and title")
        values = []
        for key in ("id", "title"):
            value = config.get(key)
            if not isinstance(value, str) or not value.strip():
                raise InvalidPaper(f"{path}: needs a non-empty string `{key}`")
            values.append(value.strip())
        return values[0], values[1]

    @cached_property
    def paper_text(self) -> str:
        """paper.md's text, what the judge reads.

        Raises:
            InvalidPaper: the folder has only paper.pdf (the judge needs the markdown).
        """
        if self.paper_md is None:
            raise InvalidPaper(f"{self.root}: the judge reads paper.md and this folder has only paper.pdf")
        return _text(self.paper_md) or ""

    def agent_files(self) -> list[Path]:
        """The files an agent reproducing the paper is given, as PaperBench uploads them to
        /home/paper (``paperbench/nano/task.py``): the paper, addendum.md, blacklist.txt and
        assets/; never rubric.json nor judge.addendum.md."""
        files = [p for p in (self.paper_md, self.paper_pdf, self.root / "addendum.md", self.root / "blacklist.txt") if p]
        if self.assets is not None:
            files += sorted(p for p in self.assets.rglob("*") if p.is_file())
        return files

    def __repr__(self) -> str:
        return f"Paper({self.id!r}, {len(self.rubric.leaves())} leaves)"


def shipped_papers() -> dict[str, Path]:
    """The papers shipped with aisci (benchmarks/paperbench/papers/<id>/), by folder name."""
    return {p.name: p for p in sorted(PAPERS.iterdir()) if (p / "config.yaml").is_file()}
