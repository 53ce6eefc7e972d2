"""`aisci run TASK --model vllm:PATH` where the engine cannot run fails fast, in one
line, before anything of a project is written (issue 11: on a cluster without a free
GPU the engine actor was never placed, the run waited forever and `--budget` never
fired). None of this needs vLLM: the refusals come before any engine starts, and an
engine that cannot start fails the same way whether vLLM is missing or the model is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from actors.llm.config import LLMConfig, with_engine
from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from cluster.cli import main
from cluster.engine import placement_refusal
from cluster.errors import UserError
from cluster.run import run_task
from cluster.sweep import SweepSpec

REPO = Path(__file__).resolve().parents[2]


def _aisci(root: Path, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """The real command line in its own process, on its own local Ray, which sees no GPU."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # Ray then counts 0 GPUs, whatever the machine has
    return subprocess.run([sys.executable, "-m", "cluster.cli", "--root", str(root), *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # a whole project / a CLI process starting Ray of its own (10-22 s)
def test_a_gpu_engine_on_a_cluster_without_gpus_is_refused_at_once(tmp_path):
    t0 = time.monotonic()
    (tmp_path / "model").mkdir()
    out = _aisci(tmp_path / "root", "run", "digits", "--model", f"vllm:{tmp_path / 'model'}", "--llm-gpus", "1",
                 "--budget", "1h")
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert "cannot be placed" in line and "GPU: 1" in line and "--llm-gpus 0" in line, out.stderr
    assert time.monotonic() - t0 < 120  # not the budget (1 h): at once
    assert Bus(tmp_path / "root").projects() == []  # nothing of a project was written


@pytest.mark.slow  # a whole project / a CLI process starting Ray of its own (10-22 s)
def test_an_engine_that_cannot_start_is_one_line_and_no_project(tmp_path):
    # No --llm-gpus on a cluster without a GPU: the CPU engine, which fails to start
    # (an empty model folder; or no vLLM installed): vLLM's reason in one line, at once.
    (tmp_path / "empty-model").mkdir()
    out = _aisci(tmp_path / "root", "run", "digits", "--model", f"vllm:{tmp_path / 'empty-model'}",
                 "--budget", "1h")
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("aisci: the vLLM engine failed to start: ") and "--llm-" in line, out.stderr
    assert Bus(tmp_path / "root").projects() == []


def test_bad_engine_settings_are_one_line(tmp_path, capsys):
    root = str(tmp_path / "root")
    settings = tmp_path / "engine.yaml"
    settings.write_text("- not a mapping\n")
    negative = tmp_path / "negative.yaml"
    negative.write_text("gpus: -1\n")
    for argv, words in (
        (["--model", "vllm:/m", "--llm-memory-fraction", "1.5"], "--llm-memory-fraction 1.5: input should be less"),
        (["--model", "vllm:/m", "--llm-gpus", "-1"], "--llm-gpus -1: input should be greater than or equal to 0"),
        (["--model", "vllm:/m", "--llm-max-model-len", "0"], "--llm-max-model-len 0: input should be greater"),
        (["--model", "vllm:/m", "--llm-config", str(negative)], "gpus: Input should be greater"),  # the file's name
        (["--model", "baseline", "--llm-gpus", "1"], "vllm:PATH only"),
        (["--model", "vllm:/m", "--llm-config", str(settings)], "a YAML mapping"),
        (["--model", "vllm:/m", "--llm-config", str(tmp_path / "missing.yaml")], "cannot read it"),
        (["--model", "vllm:/no/such/model"], "no such file or folder"),  # said before Ray starts
        (["--model", f"vllm:{tmp_path / 'nope.gguf'}"], "no such file or folder"),
    ):
        assert main(["--root", root, "run", "digits", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, (argv, err)


def test_a_sweep_passes_its_engine_settings_to_its_vllm_models(tmp_path):
    spec = SweepSpec(name="eng", tasks=["digits"], models=["baseline", "vllm:/models/m"],
                     llm={"gpus": 0, "max_model_len": 2048, "enforce_eager": True})
    llms = {c["model"]: j.llm for j, c in spec.jobs()}
    assert llms["vllm:/models/m"].vllm == {"num_gpus": 0.0, "max_model_len": 2048, "enforce_eager": True}
    assert llms["baseline"].vllm == {}
    (tmp_path / "s.yaml").write_text("name: eng\ntasks: [digits]\nmodels: ['vllm:/m']\nllm: {memory_fraction: 2}\n")
    assert main(["--root", str(tmp_path / "root"), "sweep", str(tmp_path / "s.yaml")]) == 2


def test_refusal_names_what_the_cluster_has():
    assert placement_refusal({"CPU": 1, "GPU": 1}, [{"CPU": 2, "GPU": 1}]) is None
    line = placement_refusal({"CPU": 1, "GPU": 2}, [{"CPU": 16}, {"CPU": 8, "GPU": 1}])
    assert "requires {CPU: 1, GPU: 2} for placement" in line and "largest node: {CPU: 8, GPU: 1}" in line


@pytest.fixture
def all_gpus_taken(ray_cluster):
    """Every (fake) GPU of the test cluster held by another actor."""

    @ray.remote
    class Holder:
        def ping(self):
            return True

    holder = Holder.options(num_gpus=ray.cluster_resources()["GPU"], num_cpus=0).remote()
    ray.get(holder.ping.remote())
    yield
    ray.kill(holder)


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_an_engine_waiting_for_a_busy_gpu_is_bounded_by_the_budget(all_gpus_taken, bus):
    llm = with_engine(LLMConfig(backend="vllm", model="/models/none"), {"gpus": 1})
    t0 = time.monotonic()
    with pytest.raises(UserError, match=r"not placed and started within the budget \(5 s.*--llm-gpus 0"):
        run_task(bus, str(shipped_tasks()["digits"]), project="busy", llm=llm, budget_s=5)
    assert time.monotonic() - t0 < 30
    assert bus.projects() == []
