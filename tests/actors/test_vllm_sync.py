"""The vLLM engine in this process, as a script uses it (issue 11): ``complete()`` works
any number of times (the second call raised ``EngineDeadError`` when each call ran on a
new event loop), and the engine's start-up is reported apart from the calls."""

import threading

import pytest

from actors.llm.protocol import LLMContextOverflow, LLMRequest

from .vllm_model import smollm2_dir

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def engine():
    from actors.llm.vllm_engine import VLLMEngine

    # A small window and memory share: this engine is the module's only one, and goes with it.
    e = VLLMEngine(smollm2_dir(), max_model_len=1024, gpu_memory_utilization=0.1)
    yield e
    e.close()


def ask(engine, text: str, max_tokens: int = 8) -> str:
    return engine.complete(LLMRequest(messages=[{"role": "user", "content": text}], max_tokens=max_tokens))


def test_complete_works_again_and_again_and_from_threads(engine):
    replies = [ask(engine, f"Say the number {n}.") for n in range(3)]
    assert all(r.completion_tokens > 0 and r.backend == "vllm" for r in replies)
    out = []
    threads = [threading.Thread(target=lambda n=n: out.append(ask(engine, f"Count to {n}."))) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3 and engine.stats()["requests"] == 6


def test_start_up_is_reported_apart_from_the_first_call(engine):
    stats = engine.stats()
    assert stats["startup_s"] > 5 and stats["max_model_len"] == 1024
    assert stats["gen_s"] < stats["startup_s"]  # six short replies: seconds, not the engine's minutes
    with pytest.raises(LLMContextOverflow) as e:
        ask(engine, "word " * 1200)
    assert e.value.limit_tokens == 1024 and e.value.prompt_tokens > 1000
