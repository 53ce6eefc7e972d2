"""The vLLM backend's pure parts, without vLLM (issue 11): a reply cut at its cap is
never read as a tool call; a prompt over the window is the project's
``LLMContextOverflow`` with the numbers; the engine settings from the command line, a
file or a sweep reach the engine's config, and a bad one is refused."""

import json

import pytest
from pydantic import ValidationError

from actors.llm.config import LLMConfig, ModelSpecError, resolve_engine, with_engine
from actors.llm.protocol import LLMContextOverflow
from actors.llm.server import server_name
from actors.llm.vllm_engine import check_window, read_reply


def test_a_reply_cut_at_max_tokens_is_never_a_tool_call():
    # A cut reply can still parse (the schema's object closed just in time, or a number
    # cut short): it is text all the same, so that the agent tells the model it was cut.
    whole = json.dumps({"tool": "write_file", "arguments": {"path": "code/a.py", "content": "x = 1"}})
    assert read_reply(whole, "length", tools_offered=True) == (whole, [])
    assert read_reply(whole[:40], "length", tools_offered=True) == (whole[:40], [])
    text, calls = read_reply(whole, "stop", tools_offered=True)
    assert text == "" and calls[0].name == "write_file" and json.loads(calls[0].arguments)["path"] == "code/a.py"
    assert read_reply("[1, 2]", "stop", tools_offered=True) == ("[1, 2]", [])  # not an object: text, not a crash
    assert read_reply(whole, "stop", tools_offered=False) == (whole, [])  # a decision: the text is the answer


def test_a_prompt_over_the_window_is_a_context_overflow_with_the_numbers():
    check_window(3000, 1000, 4096)  # fits: nothing raised
    with pytest.raises(LLMContextOverflow) as e:
        check_window(3097, 1000, 4096)
    assert (e.value.limit_tokens, e.value.prompt_tokens) == (4096, 3097)
    assert "maximum context length is 4096" in str(e.value)


def test_engine_settings_reach_the_engine_config_by_vllms_names():
    llm = LLMConfig(backend="vllm", model="/models/m")
    out = with_engine(llm, {"gpus": 0, "memory_fraction": 0.2, "dtype": "bfloat16"}, {"max_model_len": 2048,
                                                                                      "num_gpus": None})
    assert out.vllm == {"num_gpus": 0.0, "gpu_memory_utilization": 0.2, "max_model_len": 2048, "dtype": "bfloat16"}
    assert out.window().tokens == 2048
    # The flags win over the file, whichever name each uses.
    assert with_engine(llm, {"gpus": 2}, {"num_gpus": 1}).vllm["num_gpus"] == 1.0
    assert with_engine(llm, {}, {"num_gpus": None}) == llm  # nothing given: unchanged
    with pytest.raises(ValidationError, match="memory_fraction|gpu_memory_utilization"):
        with_engine(llm, {"memory_fraction": 1.5})
    with pytest.raises(ValidationError):
        with_engine(llm, {"gpus": -1})
    with pytest.raises(ModelSpecError, match="vllm:PATH only"):
        with_engine(LLMConfig(), {"num_gpus": 1})


def test_placement_defaults_to_a_gpu_only_where_the_cluster_has_one():
    llm = LLMConfig(backend="vllm", model="/models/m")
    cpu = resolve_engine(llm, cluster_gpus=0)
    assert cpu.vllm == {"num_gpus": 0, "gpu_memory_utilization": 0.3}  # the CPU engine, a share of host memory
    assert resolve_engine(llm, cluster_gpus=4).vllm == {"num_gpus": 1}
    assert resolve_engine(with_engine(llm, {"gpus": 0, "memory_fraction": 0.5}), 4).vllm == \
        {"num_gpus": 0.0, "gpu_memory_utilization": 0.5}  # what the user said stands
    assert resolve_engine(LLMConfig(), 0) == LLMConfig()
    # The window learnt from the running engine does not make it another server.
    assert server_name(cpu) == server_name(cpu.model_copy(update={"context_tokens": 8192}))
    assert server_name(cpu) != server_name(resolve_engine(llm, cluster_gpus=1))
