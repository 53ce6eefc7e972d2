"""The sandbox experiment code runs in: bubblewrap (Debian package ``bubblewrap``),
built as an allow-list.

A run sees only (``binds_for``): its scratch folder, writable, at
``<project>/experiments/<id>/``; its project's readable folders (task, plan, analysis,
code, experiments, logs), read-only; the interpreter and its libraries (``sys.prefix``,
``sys.base_prefix``, the site-packages folders: never other ``sys.path`` entries such
as the checkout); /usr and the /bin, /lib* links; a curated list of /etc entries
(``ETC_ENTRIES``; resolv.conf only with network; a passwd and group of its own); the
operator's ``ro_mounts``; for GPU runs the NVIDIA device nodes and /proc/driver/nvidia;
a private /tmp of ``tmp_mb`` (a tmpfs: /dev/shm links to it, so shared memory counts
against the same cap); a new /proc; a minimal /dev. Nothing else exists in it: no
home folder, no Ray session, no other project, no task's private answers. A mount that
holds or lies inside a path of ``spec.hidden`` (or any ``prepared/private`` folder) is
refused (``MountRefused``), never masked: a mask is something root could unmount.

Root inside is not root: the run is uid 1000 in a user namespace of its own, with no
capabilities and no way to make another namespace, in new pid, ipc, uts, cgroup and
(without ``network``) net namespaces; when the runner is root, bubblewrap itself runs
under an unprivileged host uid (``cluster.confine``).

``probe`` runs a trivial command through exactly these arguments once per process:
a ``bwrap`` that exists but cannot sandbox (unprivileged user namespaces disabled, a
broken install) is reported in one line instead of turning every run into "failed".
Measured on a 2-core VM (``benchmarks/perf/sandbox_bench.py``): a sandboxed ``true`` takes
68-71 ms from spawn to exit as root, an unsandboxed one 64-65 ms (both through the
supervisor; as a user 48 and 42 ms); the probe, once per process, 90-130 ms.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import site
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Literal, NamedTuple

from actors.runs import RunPolicy

from . import confine

__all__ = ["Bind", "MountRefused", "Probe", "SandboxUnavailable", "ETC_ENTRIES", "READABLE_FOLDERS", "RUN_UID",
           "binds_for", "default_sandbox", "probe", "refuse_hidden", "run_env", "start", "started"]

RUN_UID = 1000  # the run's uid (and gid) inside the sandbox
READABLE_FOLDERS = ("task", "plan", "analysis", "code", "experiments", "logs")  # not submission/, report/
# /etc entries a run may read: the loader, certificates, time zone, name service
# basics, fonts. Not the host's passwd/group (a run gets its own), never shadow.
ETC_ENTRIES = ("alternatives", "ca-certificates", "ca-certificates.conf", "crypto-policies", "fonts", "gai.conf",
               "host.conf", "hosts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types",
               "nsswitch.conf", "os-release", "pki", "protocols", "services", "ssl/certs", "ssl/openssl.cnf",
               "timezone")
NETWORK_ETC = ("resolv.conf",)
_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
_PASSWD = ("root:x:0:0:root:/root:/usr/sbin/nologin\naisci:x:1000:1000:aisci run:/tmp:/bin/bash\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
_GROUP = "root:x:0:\naisci:x:1000:\nnogroup:x:65534:\n"
_READY = "aisci-sandbox-ok"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot sandbox here; the message says what to do."""


class MountRefused(ValueError):
    """A mount the run would get holds (or lies inside) a path no run may see."""


class Bind(NamedTuple):
    src: str  # a host path
    dest: str  # where the run sees it
    kind: Literal["ro", "rw", "dev"] = "ro"


def run_env(policy: RunPolicy, run_id: str, cpus: float, host: dict[str, str] | None = None) -> dict[str, str]:
    """A run's whole environment (sandboxed or not): a fixed allow-list, the GPU
    selection Ray made, and the names the operator lists in ``policy.env``. Nothing
    else of the runner's environment (credentials, DATABASE_URL, tokens) gets in."""
    host = os.environ if host is None else host
    threads = str(max(int(cpus), 1))
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp",
           "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "AISCI_SEED": str(policy.seed), "AISCI_RUN_ID": run_id}
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                 *policy.env):
        if name in host:
            env[name] = host[name]
    return env


def _packages_dirs() -> list[str]:
    dirs = list(site.getsitepackages()) + [site.getusersitepackages()]
    dirs += glob.glob("/usr/lib/python3*/dist-packages") + glob.glob("/usr/local/lib/python3*/dist-packages")
    return sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)})


def _python_dirs() -> list[str]:
    """The interpreter's prefixes and package folders, outermost only, outside /usr."""
    found = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    found |= set(_packages_dirs())
    found = {p for p in found if not _inside(p, "/usr")}
    return sorted(p for p in found if not any(q != p and _inside(p, q) for q in found))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def binds_for(project_dir: str, work_dir: str, run_id: str, policy: RunPolicy, gpus: float) -> list[Bind]:
    """Everything a run may see, in mount order. Raises ``MountRefused`` for an
    operator's ro_mount that does not exist here."""
    binds = [Bind("/usr", "/usr")]
    binds += [Bind(f"/{d}", f"/{d}") for d in _SYSTEM_LINKS if os.path.isdir(f"/{d}") and not os.path.islink(f"/{d}")]
    for entry in ETC_ENTRIES + (NETWORK_ETC if policy.network else ()):
        if os.path.exists(f"/etc/{entry}"):
            binds.append(Bind(f"/etc/{entry}", f"/etc/{entry}"))
    binds += [Bind(f"/dev/{n}", f"/dev/{n}", "dev") for n in _DEV_NODES]
    if gpus > 0:
        binds += [Bind(p, p, "dev") for p in sorted(glob.glob("/dev/nvidia*"))]
        if os.path.isdir("/proc/driver/nvidia"):
            binds.append(Bind("/proc/driver/nvidia", "/proc/driver/nvidia"))
        for path in glob.glob("/usr/local/cuda*") + ["/usr/local/nvidia"]:
            real = os.path.realpath(path)
            if os.path.isdir(real) and not _inside(real, "/usr"):  # a link out of /usr (to /opt...)
                binds.append(Bind(real, real))
    binds += [Bind(p, p) for p in _python_dirs()]
    binds += [Bind(os.path.join(project_dir, f), os.path.join(project_dir, f)) for f in READABLE_FOLDERS
              if os.path.isdir(os.path.join(project_dir, f))]
    binds.append(Bind(work_dir, os.path.join(project_dir, "experiments", run_id), "rw"))
    for mount in policy.ro_mounts:
        if not os.path.exists(mount):
            raise MountRefused(f"the operator's ro_mount {mount} does not exist on this node")
        binds.append(Bind(os.path.realpath(mount), os.path.abspath(mount)))
    return binds


def _shipped_private() -> list[str]:
    spec = importlib.util.find_spec("benchmarks.mlebench.tasks")
    roots = list(spec.submodule_search_locations or []) if spec else []
    return [p for root in roots for p in glob.glob(os.path.join(root, "*", "prepared", "private"))]


def refuse_hidden(binds: list[Bind], hidden: tuple[str, ...] | list[str], ro_mounts: tuple[str, ...] = (),
                  bus_root: str | None = None) -> None:
    """Raise ``MountRefused`` if a bind holds or lies inside a hidden path (the run's
    ``spec.hidden``, and the shipped tasks' answers), if an installed package or an
    operator's mount holds a ``prepared/private`` folder (some task's answers), or if
    an operator's mount holds or lies inside ``bus_root`` (other projects, the index,
    the operator's files: a run sees its own project's folders only)."""
    # A hidden path that does not exist hides nothing (the shipped tasks from an
    # installed package have no answers: refusing every run for them would help no one).
    secret = [os.path.realpath(h) for h in hidden if os.path.lexists(h)]
    secret += [os.path.realpath(p) for p in _shipped_private()]
    for bind in binds:
        if bind.kind == "dev":
            continue
        src = os.path.realpath(bind.src)
        for path in secret:
            if _inside(src, path) or _inside(path, src):
                raise MountRefused(f"{bind.dest} would show {path}, a hidden path no run may see (a task's private "
                                   f"answers); mount only folders that neither hold nor lie inside it")
    for mount in ro_mounts if bus_root else ():
        real, root = os.path.realpath(mount), os.path.realpath(bus_root)
        if _inside(real, root) or _inside(root, real):
            raise MountRefused(f"the operator's ro_mount {mount} would show the bus ({root}): a run sees its own "
                               f"project's folders only")
    roots = [(d, "*/tasks/*/prepared/private") for d in _packages_dirs()]
    roots += [(os.path.realpath(m), os.path.join(*["*"] * depth, "prepared", "private"))
              for m in ro_mounts for depth in range(4)]
    for root, pattern in roots:
        if "/prepared/private" in root + "/":
            raise MountRefused(f"{root} lies inside a task's private answers (prepared/private): no run may see it")
        found = glob.glob(os.path.join(root, pattern))
        if found:
            raise MountRefused(f"{root} holds a task's private answers ({found[0]}): no run may see them; "
                               f"mount or install only the public part")


def _memfd(name: str, data: str) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _args(binds: list[Bind], env: dict[str, str], cwd: str, network: bool, tmp_mb: int, passwd: int,
          group: int) -> list[str]:
    """bwrap's options (read from a file descriptor: environment values never show in
    a process list)."""
    a = ["--unshare-user", "--uid", str(RUN_UID), "--gid", str(RUN_UID), "--disable-userns", "--cap-drop", "ALL",
         "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "aisci-run",
         "--die-with-parent", "--new-session"]
    a += [] if network else ["--unshare-net"]
    a += [x for d in _SYSTEM_LINKS if os.path.islink(f"/{d}") for x in ("--symlink", os.readlink(f"/{d}"), f"/{d}")]
    a += ["--proc", "/proc", "--size", str(1 << 20), "--tmpfs", "/dev", "--symlink", "/tmp", "/dev/shm",
          "--symlink", "/proc/self/fd", "/dev/fd", "--symlink", "/proc/self/fd/0", "/dev/stdin",
          "--symlink", "/proc/self/fd/1", "/dev/stdout", "--symlink", "/proc/self/fd/2", "/dev/stderr",
          "--size", str(tmp_mb << 20), "--tmpfs", "/tmp",
          "--ro-bind-data", str(passwd), "/etc/passwd", "--ro-bind-data", str(group), "/etc/group"]
    flag = {"ro": "--ro-bind", "rw": "--bind", "dev": "--dev-bind"}
    for bind in binds:
        a += [flag[bind.kind], bind.src, bind.dest]
    a += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", cwd, "--clearenv"]
    for name, value in env.items():
        a += ["--setenv", name, value]
    return a


def _command(command: str, ready: int) -> list[str]:
    """The first shell says "the sandbox is up" on the ready pipe, closes it, then runs
    the command: a run that fails is the run's failure, not the sandbox's."""
    bash = shutil.which("bash", path="/usr/bin:/bin") or "/bin/bash"
    return ["--", bash, "-c", f'printf {_READY} >&{ready}; exec {ready}>&-; exec "$0" -c "$1"', bash, command]


def start(binds: list[Bind], command: str, env: dict[str, str], cwd: str, network: bool, tmp_mb: int,
          rlimits: dict[str, int], uid: int | None) -> tuple[subprocess.Popen, int]:
    """Start ``command`` in a sandbox made of ``binds`` under ``rlimits``, as host uid
    ``uid`` (root only; None: the runner's own). Returns the supervisor (its stdout is
    the run's output) and the read end of the ready pipe (``started``). Raises
    ``SandboxUnavailable`` if bwrap is not installed."""
    exe = shutil.which("bwrap")
    if exe is None:
        raise SandboxUnavailable("bubblewrap is not installed (no `bwrap` on PATH): `apt-get install bubblewrap`")
    stage, stage_dir = [], None
    if uid is not None:  # bwrap will not reach root's folders: stage every source (cluster.confine)
        stage_dir = os.path.join(confine.state_dir(), "stage")
        stage = [[b.src, os.path.join(stage_dir, str(i))] for i, b in enumerate(binds)]
        binds = [b._replace(src=staged) for b, (_, staged) in zip(binds, stage)]
    passwd, group = _memfd("passwd", _PASSWD), _memfd("group", _GROUP)
    ready_r, ready_w = os.pipe()
    argfd = _memfd("bwrap-args", "\0".join(_args(binds, env, cwd, network, tmp_mb, passwd, group)) + "\0")
    plan = {"argv": [exe, "--args", str(argfd), *_command(command, ready_w)], "env": {}, "cwd": "/",
            "rlimits": rlimits, "uid": uid, "stage": stage, "stage_dir": stage_dir, "reap": False}
    try:
        return confine.spawn(plan, fds=(passwd, group, argfd, ready_w)), ready_r
    finally:
        for fd in (passwd, group, argfd, ready_w):
            os.close(fd)


def started(ready_fd: int) -> bool:
    """Whether the sandbox came up (its first shell wrote to the ready pipe); closes
    ``ready_fd``. Call it once the run has ended."""
    os.set_blocking(ready_fd, False)
    try:
        return os.read(ready_fd, 64).startswith(_READY.encode())
    except BlockingIOError:
        return False
    finally:
        os.close(ready_fd)


@dataclass(frozen=True)
class Probe:
    ok: bool
    reason: str = ""  # one line: why bubblewrap cannot sandbox here, and what to do


_probes: dict[tuple[str | None, int], Probe] = {}
_probe_lock = threading.Lock()


def probe() -> Probe:
    """Whether the ``bwrap`` on PATH can sandbox a run here: a trivial command (the
    interpreter printing a word) run through the runs' exact arguments, once per
    process and bwrap path. Never raises."""
    exe = shutil.which("bwrap")
    with _probe_lock:
        key = (exe, os.geteuid())
        if key not in _probes:
            _probes[key] = _probe(exe)
        return _probes[key]


def _probe(exe: str | None) -> Probe:
    if exe is None:
        return Probe(False, "bubblewrap is not installed (no `bwrap` on PATH): `apt-get install bubblewrap`")
    root = tempfile.mkdtemp(prefix="aisci-probe-")
    try:
        project, work = os.path.join(root, "project"), os.path.join(root, "work")
        for folder in READABLE_FOLDERS + ("experiments/probe",):
            os.makedirs(os.path.join(project, folder))
        os.mkdir(work)
        policy = RunPolicy()
        binds = binds_for(project, work, "probe", policy, gpus=0)
        slot = confine.UidSlot() if os.geteuid() == 0 else None
        uid = slot.__enter__() if slot else None
        try:
            if uid is not None:
                os.chown(work, uid, uid)
            proc, ready = start(binds, f"{sys.executable} -I -S -c 'print(\"{_READY}\")'", run_env(policy, "probe", 1),
                                os.path.join(project, "experiments", "probe"), False, 16, {"CORE": 0}, uid)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                confine.stop(proc, uid)
                out = b"did not finish in 30 s"
            up = started(ready)
        finally:
            if slot:
                slot.__exit__(None, None, None)
    except (OSError, MountRefused, RuntimeError) as e:
        return Probe(False, f"bubblewrap ({exe}) could not be tried: {e}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = out.decode("utf-8", "replace")
    last = ([line.strip() for line in text.splitlines() if line.strip()] or [""])[-1][:300]
    if up and proc.returncode == 0 and _READY in text:
        return Probe(True)
    if up:
        return Probe(False, f"the sandbox starts, but {sys.executable} does not run in it: {last or 'no output'}")
    if not last:
        return Probe(False, f"bubblewrap ({exe}) exited {proc.returncode} but did not run the probe command")
    hint = ""
    if any(w in last for w in ("uid map", "namespace", "Operation not permitted", "Permission denied")):
        hint = (" (unprivileged user namespaces look disabled: sysctl kernel.unprivileged_userns_clone=1, or "
                "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu)")
    return Probe(False, f"bubblewrap ({exe}) cannot start a sandbox here: {last}{hint}")


def default_sandbox(trusted_code: bool, allow_unsandboxed: bool) -> str:
    """The sandbox of a new job: ``bwrap`` where the probe passes; else ``none`` if the
    operator allows unsandboxed runs or no model writes the code (the baseline runs
    aisci's own templates only). Raises ``SandboxUnavailable`` (with the probe's
    reason and what to do) otherwise."""
    result = probe()
    if result.ok:
        return "bwrap"
    if trusted_code or allow_unsandboxed:
        return "none"
    raise SandboxUnavailable(f"a model's code runs only in a bubblewrap sandbox, and {result.reason}; fix that, or "
                             f"pass --allow-unsandboxed on a machine you trust")
