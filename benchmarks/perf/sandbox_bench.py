"""Figures for the experiment sandbox (docs/sandbox.md):

    python -m benchmarks.perf.sandbox_bench [--runs 20] [--quota-mb 256]

1. Start overhead: ``true`` through the whole runner (``run_experiment``), sandboxed
   and unsandboxed: the run's own duration (spawn to exit) and the runner's wall time
   (bus writes included), median of ``--runs``.
2. Disk quota overshoot: four writers, each a separate file (RLIMIT_FSIZE caps one
   file at the quota; only the watchdog stops several), against ``--quota-mb``: what
   the scratch folder held once the run was killed, beyond the quota.
3. The watchdog's walk: its time over 10,000 and 100,000 empty files.

Last line: ``sandbox_bench start_ms_bwrap=<x> start_ms_none=<y> overshoot_mb=<z> walk_ms_100k=<w>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from actors.runs import RunPolicy, make_spec
from bus import Bus
from cluster import scratch
from cluster.experiments import run_experiment


def _run(bus: Bus, name: str, command: str, **policy) -> tuple[dict, float]:
    spec = make_spec(name, command, RunPolicy(**policy))
    t0 = time.perf_counter()
    result = run_experiment(bus.config.model_dump(mode="json"), "bench", spec.model_dump(mode="json"))
    return result, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--quota-mb", type=int, default=256)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="sandbox_bench-", dir="/var/tmp")
    try:
        bus = Bus(root)
        bus.create_project("bench")
        _run(bus, "warm", "true")  # the probe runs once per process: not counted
        start = {}
        for mode in ("bwrap", "none"):
            runs = [_run(bus, f"{mode}-{i}", "true", sandbox=mode) for i in range(args.runs)]
            start[mode] = (statistics.median(r["duration_s"] for r, _ in runs) * 1000,
                           statistics.median(wall for _, wall in runs) * 1000)
            print(f"start {mode:5}: run {start[mode][0]:6.1f} ms, runner wall {start[mode][1]:6.1f} ms (median of "
                  f"{args.runs})")
        writers = " & ".join(f"dd if=/dev/zero of=f{i} bs=1M count={2 * args.quota_mb} status=none" for i in range(4))
        result, wall = _run(bus, "quota", writers + "; wait", disk_mb=args.quota_mb)
        held = scratch.usage([os.path.join(result["scratch_dir"], "experiments", "quota")], 1 << 62, 1 << 62)
        overshoot = held.bytes / 2**20 - args.quota_mb
        print(f"quota {args.quota_mb} MB, 4 writers: {result['status']} ({result['reason']}) after "
              f"{result['duration_s']:.2f} s; held {held.bytes / 2**20:.0f} MB: overshoot {overshoot:.0f} MB")
        walk = {}
        for n in (10_000, 100_000):
            folder = tempfile.mkdtemp(dir=root)
            for i in range(n):
                os.close(os.open(os.path.join(folder, str(i)), os.O_CREAT | os.O_WRONLY, 0o644))
            t0 = time.perf_counter()
            scratch.usage([folder], 1 << 62, 1 << 62)
            walk[n] = (time.perf_counter() - t0) * 1000
            print(f"watchdog walk over {n} files: {walk[n]:.0f} ms")
        print(f"sandbox_bench start_ms_bwrap={start['bwrap'][0]:.1f} start_ms_none={start['none'][0]:.1f} "
              f"overshoot_mb={overshoot:.0f} walk_ms_100k={walk[100_000]:.0f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
