"""The GPU paths on a machine that has GPUs (run it on a GPU node of your cluster):

    python -m benchmarks.perf.gpu_check

1. Ray sees the GPUs; an experiment that asks for ``gpus: 1`` is placed on one: Ray sets
   ``CUDA_VISIBLE_DEVICES`` for it, and the run's code (PyTorch, where installed) uses
   the GPU (a bf16 matrix product, its TFLOP/s in the run's metrics).
2. The fair share with real GPUs: project a asks for three 1-GPU runs, then b for one;
   the grant order (b's run must not wait for all of a's where GPUs are scarce).
3. A whole project (`aisci run`, baseline, breast-cancer) on this machine.
Last line: ``gpu_check gpus=<n> run_gpu=<name> tflops=<x> grants=<order> project_medal=<m>``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time

import ray

from actors.runs import RunPolicy, make_spec
from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from cluster.run import run_task
from cluster.scheduler import run_batch, run_queue

PROBE = """python3 - <<'EOF'
import json, os, time
out = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
try:
    import torch
    out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no cuda"
    if torch.cuda.is_available():
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        for _ in range(3): a @ a
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(10): a @ a
        torch.cuda.synchronize()
        out["tflops"] = 10 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12
except ImportError:
    out["device"] = "no torch"
print(json.dumps(out))
json.dump({"tflops": out.get("tflops", 0.0), "cv_score": 0.0}, open("metrics.json", "w"))
EOF"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fake-gpus", type=int, help="a dry run on a machine without GPUs (Ray's fake GPUs)")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="gpu_check-")
    try:
        ray.init(include_dashboard=False, namespace="aisci", log_to_driver=False,
                 **({"num_gpus": args.fake_gpus} if args.fake_gpus else {}))
        gpus = ray.cluster_resources().get("GPU", 0)
        print(f"Ray: {ray.cluster_resources().get('CPU', 0):.0f} CPUs, {gpus:.0f} GPUs")
        bus = Bus(root)
        for p in ("gpu-a", "gpu-b"):
            bus.create_project(p)
        t0 = time.perf_counter()
        [probe] = run_batch(bus.config, "gpu-a", [make_spec("probe", PROBE, RunPolicy(), gpus=1, memory_mb=8192,
                                                            timeout_s=300)])
        seen = json.loads(probe.output_tail.strip().splitlines()[-1]) if probe.status == "ok" else {}
        print(f"1. a gpus=1 run: {probe.status} in {time.perf_counter() - t0:.1f} s; "
              f"CUDA_VISIBLE_DEVICES={seen.get('cuda_visible_devices')!r}, device {seen.get('device')}, "
              f"bf16 8192^3 matmul {seen.get('tflops', 0):.0f} TFLOP/s" + (
                  "" if probe.status == "ok" else f"; output: {probe.output_tail[-500:]}"))

        before = len(ray.get(run_queue().snapshot.remote())["granted"])
        spec = lambda i: make_spec(f"s{i}", "sleep 2", gpus=1, cpus=0.5, memory_mb=1024)  # noqa: E731
        a = threading.Thread(target=run_batch, args=(bus.config, "gpu-a", [spec(i) for i in range(3)]))
        a.start()
        time.sleep(0.5)
        b = threading.Thread(target=run_batch, args=(bus.config, "gpu-b", [spec(9)]))
        b.start()
        a.join()
        b.join()
        grants = [g[-1] for g in ray.get(run_queue().snapshot.remote())["granted"][before:]]
        print(f"2. grant order with {gpus:.0f} GPU(s), a asking 3 runs then b 1: {''.join(grants)}")

        out = run_task(bus, str(shipped_tasks()["breast-cancer"]), project="bc", budget_s=900)
        print(f"3. aisci run breast-cancer: {out.grade.medal} ({out.grade.score}) in {out.wall_s:.1f} s")
        print(f"gpu_check gpus={gpus:.0f} run_gpu={str(seen.get('device', 'none')).replace(' ', '_')} "
              f"tflops={seen.get('tflops', 0):.0f} grants={''.join(grants)} project_medal={out.grade.medal}")
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
