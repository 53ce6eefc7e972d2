"""Processes the bus tests start: real writers, readers and crashers.

    python -m tests.bus.workers write ROOT PROJECT NAME N [COMPACT_ROWS]
    python -m tests.bus.workers read ROOT PROJECT OUTFILE STOPFILE
    python -m tests.bus.workers churn ROOT PROJECT NAME N [READYFILE]
    python -m tests.bus.workers swap FOLDER NAME LINK_TARGET STOPFILE READYFILE
    python -m tests.bus.workers compact ROOT PROJECT
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

from bus import Bus, BusConfig


def content(name: str, i: int) -> str:
    """Deterministic, self-checking file content: a torn file would not parse."""
    body = f"{name}:{i}\n" * (1 + i % 7)
    return body + f"END {name}:{i} {len(body)}\n"


def write(root: str, project: str, name: str, n: int, compact_rows: int = 2000) -> None:
    bus = Bus(config=BusConfig(root=root, compact_rows=compact_rows))
    view = bus.project(project).as_role("coder", name)
    for i in range(n):
        op = i % 3
        if op == 0:
            view.write(f"code/{name}/f{i % 5}.py", content(name, i), summary=f"{name} {i}")
        elif op == 1:
            view.append("logs/implementation.md", f"{name} record {i} " + "x" * (i % 50) + "\n")
        else:
            view.record("metric", f"{name} {i}", metrics={"score": float(i)}, prompt_tokens=i, completion_tokens=1)


def read(root: str, project: str, outfile: str, stopfile: str) -> None:
    """Follow the project with a cursor, as an agent re-grounding would."""
    bus = Bus(root)
    cursor, seen = 0, []
    while True:
        stop = os.path.exists(stopfile)
        table = bus.index.snapshot(project, since=cursor)
        if table.num_rows:
            seqs = table.column("seq").to_pylist()
            seen += seqs
            cursor = seqs[-1]
        if stop:
            break
        time.sleep(0.002)
    with open(outfile, "w") as f:
        json.dump(seen, f)


def churn(root: str, project: str, name: str, n: int, readyfile: str | None = None) -> None:
    """Many small writes and appends, for being killed at a random moment; creates
    ``readyfile`` (if given) once the first write and append are done."""
    bus = Bus(config=BusConfig(root=root, compact_rows=40))
    view = bus.project(project).as_role("coder", name)
    for i in range(n):
        view.write(f"code/f{i % 4}.py", content(name, i), summary=f"{i}")
        view.append("logs/implementation.md", f"{name} record {i} " + "y" * (i % 300) + "\n")
        if i == 0 and readyfile:
            open(readyfile, "w").close()


def swap(folder: str, name: str, target: str, stopfile: str, readyfile: str) -> None:
    """What a hostile run does to race the bus: swap ``folder/name`` (a file or a
    folder) with a symlink to ``target`` and back, atomically (``renameat2`` with
    RENAME_EXCHANGE: the name always exists, as the real thing or as the link), until
    ``stopfile`` exists. Writes ``ready`` to ``readyfile`` after the first swap, and the
    number of swaps when done; leaves the real thing at ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    real, link = os.path.join(folder, name).encode(), os.path.join(folder, name + ".link").encode()
    os.symlink(target, link)
    swaps = 0
    while not os.path.exists(stopfile) or swaps % 2:
        if libc.renameat2(-100, real, -100, link, 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
            raise OSError(ctypes.get_errno(), "renameat2")
        swaps += 1
        if swaps == 1:
            with open(readyfile, "w") as f:
                f.write("ready")
    os.unlink(link)
    with open(readyfile, "w") as f:
        f.write(str(swaps))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "write":
        write(args[0], args[1], args[2], int(args[3]), *(int(a) for a in args[4:]))
    elif mode == "read":
        read(*args)
    elif mode == "churn":
        churn(args[0], args[1], args[2], int(args[3]), *args[4:])
    elif mode == "swap":
        swap(*args)
    elif mode == "compact":
        Bus(args[0]).index.compact(args[1])
    elif mode != "crash":
        raise SystemExit(f"unknown mode {mode}")


def crash_script(root: str, project: str) -> None:
    """A fixed sequence of operations; AISCI_CRASH_AT picks where the process dies."""
    bus = Bus(config=BusConfig(root=root, compact_rows=1_000_000))
    view = bus.project(project).as_role("coder", "crasher")
    for i in range(3):
        view.write("code/a.py", content("a", i), summary=f"a {i}")
        view.append("logs/implementation.md", f"crasher record {i} " + "z" * 100 + "\n")
        view.record("metric", f"m {i}", metrics={"score": float(i)})
        bus.index.compact(project)


if __name__ == "__main__" and sys.argv[1] == "crash":
    crash_script(sys.argv[2], sys.argv[3])
