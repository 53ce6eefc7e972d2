"""A run's scratch folder: where it writes, outside the project, read back without trust.

``<bus root>/scratch/<project>/<run id>/experiments/<run id>/`` is the only folder a
run can write (the sandbox shows it at ``<project>/experiments/<run id>/``, so that
``python3 ../../code/train.py`` works; an unsandboxed run gets a tree whose other
entries are links to the project's folders, made here). The framework's own files of
the run (spec.json, output.log, result.json, what is ingested) live in the real
``<project>/experiments/<run id>/``, which the run never touches: a run that replaces
its output.log with a link to task/description.md only changes its scratch folder.

Everything read back is opened with O_NOFOLLOW | O_NONBLOCK and checked with fstat
(regular files only, size-capped, count-capped), after every process of the run is
dead: links are never followed, a FIFO never blocks the runner, a 1 GB metrics.json
costs nothing (it is refused by size before a byte is read).

``usage`` is the disk quota's watchdog: it walks the tree (never following links,
stopping as soon as a cap is passed, at most ``MAX_DEPTH`` folders deep) and sums
st_blocks. The runner calls it every 0.25 s or four times the last walk's time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
from dataclasses import dataclass, field

from actors.llm.untrusted import (
    clean,  # a metric name from run code: as any untrusted text
)

__all__ = ["Harvest", "Usage", "harvest", "make", "read_metrics", "usage", "wipe", "MAX_DEPTH", "METRICS_MAX_BYTES"]

MAX_DEPTH = 64  # folders deeper than this count as over quota (a walk holds one fd per level)
METRICS_MAX_BYTES = 64 * 1024
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link (never followed)"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file"


def wipe(path: str) -> None:
    """Remove ``path`` and everything in it, links never followed (shutil.rmtree's
    fd-based walk), folders a run made unreadable included."""
    def retry(func, failed, exc_info):
        parent = os.path.dirname(failed)
        for p in (parent, failed):
            try:
                if stat.S_ISDIR(os.lstat(p).st_mode):
                    os.chmod(p, 0o700)
            except OSError:
                pass
        func(failed)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=retry)


def make(scratch: str, run_id: str, project_dir: str | None, owner: int | None) -> str:
    """A fresh scratch tree for run ``run_id`` (what an earlier attempt left is wiped);
    returns the run's writable folder. ``project_dir``: also link the project's
    readable folders beside it (an unsandboxed run). ``owner``: chown the writable
    folder to this uid (the run's own, when the runner is root)."""
    wipe(scratch)
    work = os.path.join(scratch, "experiments", run_id)
    os.makedirs(work, mode=0o755)
    if project_dir is not None:
        os.mkdir(os.path.join(scratch, "tmp"), 0o700)
        for folder in ("task", "plan", "analysis", "code", "logs"):
            os.symlink(os.path.join(project_dir, folder), os.path.join(scratch, folder))
        experiments = os.path.join(project_dir, "experiments")
        for other in os.listdir(experiments):
            if other != run_id:
                os.symlink(os.path.join(experiments, other), os.path.join(scratch, "experiments", other))
    if owner is not None:
        os.chown(work, owner, owner)
    return work


@dataclass
class Usage:
    bytes: int = 0  # allocated (st_blocks * 512): a sparse file costs what it holds
    entries: int = 0  # files, folders, links...
    too_deep: bool = False


def usage(roots: list[str], max_bytes: int, max_entries: int) -> Usage:
    """What ``roots`` hold on disk, walked without following links; the walk stops as
    soon as ``max_bytes`` or ``max_entries`` is passed."""
    found = Usage()
    for root in roots:
        try:
            fd = os.open(root, _OPEN | os.O_DIRECTORY)
        except OSError:
            continue
        _walk(fd, 0, found, max_bytes, max_entries)
        if found.too_deep or found.bytes > max_bytes or found.entries > max_entries:
            break
    return found


def _walk(dir_fd: int, depth: int, found: Usage, max_bytes: int, max_entries: int) -> None:
    try:
        names = os.listdir(dir_fd)
        for name in names:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            found.bytes += st.st_blocks * 512
            found.entries += 1
            if found.bytes > max_bytes or found.entries > max_entries:
                return
            if stat.S_ISDIR(st.st_mode):
                if depth + 1 >= MAX_DEPTH:
                    found.too_deep = True
                    return
                try:
                    sub = os.open(name, _OPEN | os.O_DIRECTORY, dir_fd=dir_fd)
                except OSError:
                    continue
                _walk(sub, depth + 1, found, max_bytes, max_entries)
                if found.too_deep:
                    return
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _read_capped(dir_fd: int, name: str, cap: int) -> tuple[bytes | None, str]:
    """The content of regular file ``name`` if it holds at most ``cap`` bytes; else
    (None, why). Never follows a link, never blocks."""
    try:
        fd = os.open(name, _OPEN, dir_fd=dir_fd)
    except FileNotFoundError:
        return None, "missing"
    except OSError as e:  # ELOOP: a link; ENXIO: a socket
        try:
            return None, _kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            return None, str(e)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, _kind(st.st_mode)
        if st.st_size > cap:
            return None, f"{st.st_size} bytes (more than {cap})"
        data = os.read(fd, cap + 1)
        return (data, "") if len(data) <= cap else (None, f"more than {cap} bytes")
    finally:
        os.close(fd)


def read_metrics(work: str) -> tuple[dict[str, float], str]:
    """The finite numbers of the run's metrics.json, and what is wrong with it ("" if
    nothing): a link, a FIFO, more than 64 KB, not JSON, or a non-finite number (NaN,
    inf) make the run invalid, never a score."""
    dir_fd = os.open(work, _OPEN | os.O_DIRECTORY)
    try:
        data, why = _read_capped(dir_fd, "metrics.json", METRICS_MAX_BYTES)
    finally:
        os.close(dir_fd)
    if why == "missing":
        return {}, ""
    if data is None:
        return {}, f"metrics.json is {why}; write one small JSON object of numbers"
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: [[[[... nested past Python's limit
        return {}, f"metrics.json is not valid JSON ({str(e)[:200]}); write one object of numbers"
    if not isinstance(parsed, dict):
        return {}, "metrics.json must be one JSON object of numbers, e.g. {\"cv_score\": 0.91}"
    numbers = {}
    for k, v in parsed.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                numbers[clean(k)[:200]] = float(v)
            except OverflowError:  # an integer beyond any float (1 followed by 400 zeros)
                numbers[clean(k)[:200]] = math.inf
    bad = sorted(k for k, v in numbers.items() if not math.isfinite(v))
    if bad:
        return {k: v for k, v in numbers.items() if math.isfinite(v)}, \
            f"metrics.json has non-finite or out-of-range values for {', '.join(bad)} (NaN, inf, beyond a float): not a result"
    return numbers, ""


@dataclass
class Harvest:
    files: dict[str, bytes] = field(default_factory=dict)  # to put on the bus
    left: list[tuple[str, int]] = field(default_factory=list)  # too big or too many: (name, size) left in scratch
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it was not taken


def harvest(work: str, reserved: tuple[str, ...], max_file_bytes: int, max_files: int, max_total_bytes: int) -> Harvest:
    """The run's top-level outputs worth putting on the bus: regular files of at most
    ``max_file_bytes``, ``max_files`` of them and ``max_total_bytes`` in all; links,
    FIFOs, sockets, devices and ``reserved`` names (the framework's own files) are
    skipped with a reason; hidden names (.cache...) are left silently."""
    out = Harvest()
    total = 0
    dir_fd = os.open(work, _OPEN | os.O_DIRECTORY)
    try:
        for name in sorted(os.listdir(dir_fd)):
            if name.startswith("."):
                continue
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            if name in reserved:
                out.skipped[name] = f"{name} is the framework's own file for the run; the run's copy is not taken"
            elif any(ord(c) < 32 or ord(c) == 127 for c in name):
                out.skipped[name] = ("its name holds a control character (a newline, a tab...): not taken; name "
                                     "outputs with letters, digits, '.', '_' and '-'")
            elif not stat.S_ISREG(st.st_mode):
                out.skipped[name] = _kind(st.st_mode) + (": it stays in the scratch folder"
                                                         if stat.S_ISDIR(st.st_mode) else ": not taken")
            elif st.st_size > max_file_bytes or len(out.files) >= max_files or total + st.st_size > max_total_bytes:
                out.left.append((name, st.st_size))
            else:
                data, why = _read_capped(dir_fd, name, max_file_bytes)
                if data is None:
                    out.skipped[name] = why
                else:
                    out.files[name] = data
                    total += len(data)
    finally:
        os.close(dir_fd)
    return out
