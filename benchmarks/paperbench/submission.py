"""What the judge may read of a submission, and how much of it (bounded reads).

PaperBench's SimpleJudge (``paperbench/judge/simple.py``, ``paperbench/judge/utils.py`` in
openai/frontier-evals, project/paperbench) shows the judge a tree of the submission's
plain-text files, filtered by the leaf's category, then up to 10 files the judge picks;
``reproduce.sh`` and ``reproduce.log`` travel separately. We keep its filters:

- skipped folders (any path part containing): venv, .venv, .env, wandb, .egg-info, .git,
  .github, __pycache__, node_modules;
- Code Development and Code Execution: docs (.md .txt .rst) and code (CODE_SUFFIXES);
- Result Analysis: docs, and tables (TABLE_SUFFIXES) written by the reproduction only
  (modified at or after ``reproduce.log.creation_time``, else reproduce.log's mtime);
  if no listed file was touched by the reproduction, PaperBench scores every Result
  Analysis leaf 0 without asking the model (``reproduce_touched_files``).

The caps (``Limits``) bound what is read whatever the submission holds. PaperBench sizes
its reads in tokens of the judge model's context; we cap in bytes and characters, at
about the same sizes for a 128k-token model (4 characters a token), and say so per field.
Symbolic links are never followed (a submission could point one at any file).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

__all__ = ["CODE_SUFFIXES", "DOC_SUFFIXES", "TABLE_SUFFIXES", "Limits", "Submission", "reduce_log"]

SKIPPED_DIRS = ("venv", ".venv", ".env", "wandb", ".egg-info", ".git", ".github", "__pycache__", "node_modules")
DOC_SUFFIXES = frozenset({".md", ".txt", ".rst"})
CODE_SUFFIXES = frozenset({".py", ".R", ".Rmd", ".m", ".jl", ".c", ".h", ".cpp", ".hpp", ".cc", ".cxx", ".hxx",
                           ".java", ".js", ".ts", ".scala", ".go", ".rs", ".sh",
                           ".config", ".cfg", ".json", ".yaml", ".yml", ".toml", ".ini"})
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".psv", ".json", ".jsonl", ".html", ".xml", ".yaml", ".yml", ".toml",
                            ".arff", ".tex", ".svm", ".libsvm"})


class Limits(BaseModel):
    """How much of a submission the judge reads (the library's caps, not the agent's)."""

    max_file_bytes: int = Field(default=200_000, gt=0, description="Bytes read of one file: PaperBench's "
                                "SIZE_LIMIT_BYTES (judge/utils.py).")
    max_selected_files: int = Field(default=10, gt=0, description="Files shown per leaf: PaperBench's "
                                    "max_files in _prepare_relevant_files.")
    max_files_chars: int = Field(default=360_000, gt=0, description="Characters of file content per leaf: "
                                 "PaperBench fills the context left after the paper and the log (about 90k "
                                 "tokens of a 128k model); ours is that at 4 characters a token.")
    max_log_chars: int = Field(default=256_000, gt=0, description="Characters of reproduce.log kept from the "
                               "start after repeats are collapsed (the log is read, like any file, up to "
                               "max_file_bytes first): PaperBench keeps half the context (64k tokens).")
    max_listed_files: int = Field(default=2_000, gt=0, description="Entries in the tree shown for selection; "
                                  "past it the tree is listed to max_list_depth (PaperBench: 4 levels when the "
                                  "full tree does not fit), then cut.")
    max_list_depth: int = Field(default=4, gt=0, description="PaperBench's max_file_depth fallback.")
    max_walked_entries: int = Field(default=50_000, gt=0, description="Directory entries visited at most "
                                    "(ours: bounds the walk of a submission with a huge generated tree).")


@dataclass(frozen=True)
class ListedFile:
    path: str  # relative, with '/'
    mtime: float


def _skipped(parts: tuple[str, ...]) -> bool:
    return any(s in part for s in SKIPPED_DIRS for part in parts)


class Submission:
    """A submission folder as the judge sees it (read-only)."""

    def __init__(self, root: str | Path, limits: Limits | None = None):
        self.root = Path(root).resolve()
        self.limits = limits or Limits()
        self._files = self._walk()

    def _walk(self) -> list[ListedFile]:
        files, seen = [], 0
        for here, dirs, names in os.walk(self.root):  # os.walk does not enter linked folders
            rel = Path(here).relative_to(self.root)
            dirs.sort()
            if _skipped(rel.parts):
                dirs[:] = []
                continue
            for name in sorted(names):
                seen += 1
                if seen > self.limits.max_walked_entries:
                    return files
                full = Path(here) / name
                try:
                    st = full.lstat()
                except OSError:
                    continue
                if full.is_symlink() or not full.is_file():
                    continue
                files.append(ListedFile((rel / name).as_posix(), st.st_mtime))
        return files

    @property
    def reproduce_sh(self) -> str | None:
        return self.read("reproduce.sh")

    @property
    def reproduction_started(self) -> float | None:
        """When the reproduction started (epoch s): reproduce.log.creation_time (written by
        the runner before reproduce.sh starts), else reproduce.log's mtime, else None."""
        stamp = self.read("reproduce.log.creation_time")
        if stamp is not None:
            try:
                return float(stamp.strip())
            except ValueError:
                pass
        log = self.root / "reproduce.log"
        return log.lstat().st_mtime if log.is_file() and not log.is_symlink() else None

    def reproduce_log(self) -> str | None:
        """reproduce.log with repeated lines collapsed, cut to max_log_chars; None if absent."""
        log = self.read("reproduce.log")  # PaperBench reads it as any file: its first max_file_bytes
        if log is None:
            return None
        reduced = reduce_log(log)
        if len(reduced) > self.limits.max_log_chars:
            reduced = reduced[: self.limits.max_log_chars] + "\n(reproduce.log cut here: over the judge's cap)"
        return reduced

    def listed(self, task_category: str) -> list[str]:
        """The files shown to the judge for a leaf of this category (relative paths)."""
        docs = DOC_SUFFIXES
        if task_category == "Result Analysis":
            started = self.reproduction_started
            keep = [f for f in self._files if Path(f.path).suffix in docs or (
                Path(f.path).suffix in TABLE_SUFFIXES and started is not None and f.mtime >= started)]
        else:
            keep = [f for f in self._files if Path(f.path).suffix in docs | CODE_SUFFIXES]
        paths = [f.path for f in keep]
        if len(paths) > self.limits.max_listed_files:
            paths = [p for p in paths if p.count("/") < self.limits.max_list_depth]
        return paths[: self.limits.max_listed_files]

    def reproduction_touched_files(self) -> bool:
        """PaperBench's reproduce_touched_files: some file listed for Result Analysis was
        written at or after the reproduction started."""
        started = self.reproduction_started
        if started is None:
            return False
        listed = set(self.listed("Result Analysis"))
        return any(f.mtime >= started for f in self._files if f.path in listed)

    def read(self, rel: str, max_bytes: int | None = None) -> str | None:
        """A file's text (UTF-8, else Latin-1, as PaperBench reads), at most max_bytes
        (default max_file_bytes); None if it is absent, a link, or outside the submission."""
        path = (self.root / rel.strip().lstrip("/"))
        try:
            resolved = path.resolve()
        except OSError:
            return None
        # Resolving catches `..` and links (of the file or a folder above it) that lead outside.
        if not resolved.is_relative_to(self.root) or path.is_symlink() or not path.is_file():
            return None
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes or self.limits.max_file_bytes)
        except OSError:  # unreadable (permissions, vanished): as absent
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")


_VOLATILE = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ][0-9:.]+Z?"), "<TIME>"),
    (re.compile(r"\b[0-9a-fA-F]{8,}\b"), "<HEX>"),
    (re.compile(r"\d+(\.\d+)?"), "<N>"),
]


def _shape(line: str) -> str:
    for pattern, token in _VOLATILE:
        line = pattern.sub(token, line)
    return line.strip()


def reduce_log(text: str) -> str:
    """Collapse runs of lines that differ only in numbers, times or hashes (progress bars,
    per-step losses) to their first line and a count. PaperBench does this with drain3's
    template miner (``reduce_log``); ours masks the volatile parts with regular expressions."""
    out: list[str] = []
    prev, run = None, 0
    for line in text.splitlines():
        shape = _shape(line)
        if shape == prev:
            run += 1
            continue
        if run > 1:
            out.append(f"  (repeated {run} times)")
        out.append(line)
        prev, run = shape, 1
    if run > 1:
        out.append(f"  (repeated {run} times)")
    return "\n".join(out)
