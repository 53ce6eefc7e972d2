"""What the tests marked ``vllm`` share: the packaged SmolLM2 model as an HF folder
(converted once, ``benchmarks.smollm2``) and the engine settings every one of them
uses, so that the tests in one module share one engine (start-up: 2-4 min on 2 cores)."""

import pytest

# A window that fits the orchestrator's decision prompt and a reply; a share of host
# memory that leaves room beside the rest of the machine (vLLM's 0.9 failed here).
ENGINE = {"gpus": 0, "max_model_len": 4096, "memory_fraction": 0.3}


def smollm2_dir() -> str:
    """The model folder, or the test is skipped where vLLM or the model is not installed."""
    pytest.importorskip("vllm", reason="the vllm extra is not installed")
    from benchmarks.smollm2 import model_dir, packaged_gguf

    try:
        packaged_gguf()
    except ModuleNotFoundError as e:
        pytest.skip(str(e))
    return model_dir()
