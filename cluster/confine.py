"""Confining a run's processes: its limits, its host identity, and no survivors.

Every run starts through this file run as a program (``python -I -S confine.py FD``,
standard library only), the *supervisor*. It reads its plan from FD, then:

1. sets the run's rlimits (processes, file size, core dumps, address space);
2. when the runner is root and the run is sandboxed, drops to an unprivileged host
   uid of its own (``UidSlot``: one per concurrent run, so that RLIMIT_NPROC counts
   only that run's processes and a kernel escape lands as nobody in particular);
3. then either execs bubblewrap (the pid namespace kills every process of the run when
   the sandbox's init exits), or, for an unsandboxed run, becomes the run's child
   subreaper: orphans are re-parented to it, and it kills every descendant when the
   command ends or when it is told to stop (SIGTERM, also its parent-death signal).

Why a program and not ``preexec_fn``: Ray workers are multi-threaded, and Python code
between fork and exec in a threaded process can deadlock (subprocess's own warning).
Starting the supervisor costs ~23 ms (measured: ``python -I -S`` with these imports).

Why staging: bubblewrap 0.8 resolves every bind source by path, ``--bind-fd`` included
(strace: ``readlink /proc/self/fd/3`` then ``readlink /root/.pyenv`` -> EACCES), so once
the identity is dropped it cannot reach a virtualenv under /root (0700) or a bus under
a 0700 folder. The supervisor, still root, first bind-mounts each source onto
``<state>/stage/<i>`` in a private mount namespace of its own (invisible to the host and
to other runs), and bubblewrap binds those.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import signal
import subprocess
import sys
import time

__all__ = ["UidSlot", "kill_uid", "spawn", "stop", "tasks_of_uid", "state_dir", "SETUP_FAILED"]

SETUP_FAILED = 125  # the supervisor could not confine the run (its message starts with "aisci-confine:")
UID_BASE = int(os.environ.get("AISCI_RUN_UID_BASE", "1500000000"))  # far from users and subuid ranges
UID_SLOTS = 4096
_RLIMITS = {"NPROC": resource.RLIMIT_NPROC, "FSIZE": resource.RLIMIT_FSIZE, "CORE": resource.RLIMIT_CORE,
            "AS": resource.RLIMIT_AS}
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36
_CLONE_NEWNS, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20000, 4096, 16384, 1 << 18


def state_dir() -> str:
    """Where root keeps the uid slots and the staging mount point: local to the machine
    (``$AISCI_STATE_DIR``, else /run/aisci)."""
    path = os.environ.get("AISCI_STATE_DIR", "/run/aisci")
    os.makedirs(os.path.join(path, "stage"), mode=0o755, exist_ok=True)
    return path


class UidSlot:
    """An unprivileged host uid held by one run (root only): a flock on
    ``<state>/uids/<n>``, released when the run ends or its runner dies. Any process
    still running under the uid when it is taken is killed first.

        >>> with UidSlot() as uid:  # doctest: +SKIP
        ...     print(uid)  # 1500000000 + n
    """

    def __init__(self):
        self.uid: int | None = None
        self._fd: int | None = None

    def __enter__(self) -> int:
        folder = os.path.join(state_dir(), "uids")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        for n in range(UID_SLOTS):
            fd = os.open(os.path.join(folder, str(n)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._fd, self.uid = fd, UID_BASE + n
            kill_uid(self.uid)  # left over from a runner that died
            return self.uid
        raise RuntimeError(f"all {UID_SLOTS} run uids are taken ({folder}): too many runs on this machine at once")

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            kill_uid(self.uid)
            os.close(self._fd)
            self._fd = None


def _status_of(pid: str) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}


def tasks_of_uid(uid: int) -> int:
    """Threads (what RLIMIT_NPROC counts) whose real uid is ``uid``."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        status = _status_of(pid)
        if status.get("Uid", "").split()[:1] == [str(uid)]:
            total += int(status.get("Threads", "1"))
    return total


def kill_uid(uid: int, timeout_s: float = 5.0) -> bool:
    """SIGKILL every process whose real or effective uid is ``uid`` until none is left
    (zombies aside); True when none is. Only meaningful for a run's own uid."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            status = _status_of(pid)
            uids = status.get("Uid", "").split()[:2]
            if str(uid) in uids and not status.get("State", "").strip().startswith("Z"):
                alive.append(int(pid))
        if not alive:
            return True
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def spawn(plan: dict, fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """Start the supervisor on ``plan`` (keys: argv, env, cwd, rlimits, uid, stage,
    reap; see ``_supervise``), its stdout and stderr one pipe (``proc.stdout``).
    ``fds`` are passed on to the command. Returns the supervisor's Popen."""
    plan = {**plan, "parent": os.getpid()}
    config = os.memfd_create("aisci-plan")
    try:
        os.write(config, json.dumps(plan).encode())
        os.lseek(config, 0, os.SEEK_SET)
        return subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__), str(config)],
                                pass_fds=(*fds, config), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, env={}, cwd="/")
    finally:
        os.close(config)


def stop(proc: subprocess.Popen, uid: int | None, grace_s: float = 3.0) -> None:
    """End the run: every process of it, however it detached. A sandbox (the supervisor
    exec'd bubblewrap) dies with its pid namespace; an unsandboxed run's supervisor is
    asked (SIGTERM) to kill its descendants, and killed after ``grace_s``. A run uid's
    processes are then killed, whoever their parent."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.kill()
    proc.wait()
    if uid is not None:
        kill_uid(uid)


# -- the supervisor (runs as its own program: standard library only) ------------------------

def _fail(message: str) -> None:
    os.write(2, f"aisci-confine: {message}\n".encode())
    os._exit(SETUP_FAILED)


def _libc_call(name: str, *args) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _stage(stage_dir: str, pairs: list[list[str]]) -> None:
    """Bind each source onto its staged path, in a mount namespace of our own."""
    _libc_call("unshare", _CLONE_NEWNS)
    _libc_call("mount", None, b"/", None, _MS_REC | _MS_PRIVATE, None)  # nothing propagates to the host
    _libc_call("mount", b"tmpfs", stage_dir.encode(), b"tmpfs", 0, b"mode=0755,size=1m")
    for source, staged in pairs:
        if os.path.isdir(source):
            os.mkdir(staged)
        else:
            os.close(os.open(staged, os.O_CREAT | os.O_WRONLY, 0o644))
        _libc_call("mount", source.encode(), staged.encode(), None, _MS_BIND | _MS_REC, None)


def _drop(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        _fail(f"could not drop to uid {uid}")


def _descendants() -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    found, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_descendants() -> None:
    """Kill every descendant (orphans come back to us: we are their subreaper) and reap
    them, until none is left."""
    while True:
        for pid in _descendants():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return  # no child left, and every orphan is re-parented to us: done
        time.sleep(0.005)


def _reap(argv: list[str], env: dict, cwd: str) -> None:
    """Run the command as our child; when it ends (or we are told to stop), kill every
    descendant; exit with the command's status."""
    _libc_call("prctl", _PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def stopped(signum, frame):
        _kill_descendants()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    _libc_call("prctl", _PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # the runner died: stop too
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _libc_call("prctl", _PR_SET_PDEATHSIG, 0, 0, 0, 0)
        try:
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        except OSError as e:
            os.write(2, f"aisci-confine: cannot run {argv[0]}: {e}\n".encode())
        os._exit(127)
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            status = 0
            break
        if done == pid:
            break
    _kill_descendants()
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)  # killed by signal n: 128 + n, as a shell says


def _supervise(plan: dict) -> None:
    for name, value in plan["rlimits"].items():
        resource.setrlimit(_RLIMITS[name], (value, value))
    try:
        if plan.get("stage"):
            _stage(plan["stage_dir"], plan["stage"])
        if plan.get("uid") is not None:
            _drop(plan["uid"])
    except OSError as e:
        _fail(f"cannot confine the run: {e}")
    if plan.get("reap"):
        _reap(plan["argv"], plan["env"], plan["cwd"])
    # The parent-death signal is cleared by a change of identity: set it after the drop,
    # then make sure the parent did not die before it was set.
    _libc_call("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != plan["parent"]:
        os._exit(SETUP_FAILED)
    try:
        os.chdir(plan["cwd"])
        os.execve(plan["argv"][0], plan["argv"], plan["env"])
    except OSError as e:
        _fail(f"cannot run {plan['argv'][0]}: {e}")


if __name__ == "__main__":
    _fd = int(sys.argv[1])
    with os.fdopen(_fd, "rb") as _config:  # closed before exec: the run never sees the plan
        _plan = json.load(_config)
    _supervise(_plan)
