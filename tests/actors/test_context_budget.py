"""The context budget holds when the big text is the model's own (peer case 8): the
real agent loop against the scripted model."""

import json

from actors import context
from actors.agent import Agent, Subtask
from actors.llm.scripted import ScriptedLLM, reply
from actors.roles import ROLES

# Peer case 8's script: ~20 KB.
CODE = "".join(f"x_{i} = {i}  # a line of a long training script .............\n" for i in range(300))


def rewrites(n: int) -> list:
    return [reply(calls=[("write_file", {"path": "code/train.py", "content": CODE + f"# v{v}\n", "summary": f"v{v}"})])
            for v in range(n)] + [reply(calls=[("finish", {"summary": "done"})])]


def test_eight_rewrites_of_a_20_kb_script_stay_within_the_budget(bus):
    bus.create_project("p")
    llm = ScriptedLLM({"c1": rewrites(8)})
    result = Agent(bus, llm).run("p", Subtask(id="c1", role="coder", goal="write the training script"))
    assert result.status == "finished"
    sizes = [context.size(r.messages) for r in llm.requests]
    assert max(sizes) <= ROLES["coder"].context_chars, sizes  # was 151,405 at the 9th request
    # An old call is still a valid call, and says where its content went.
    call, result = llm.requests[-1].messages[2:4]
    args = json.loads(call["tool_calls"][0]["function"]["arguments"])
    assert args["path"] == "code/train.py" and args["summary"] == "v0"
    version = result["content"].split("(version ")[1].split(",")[0]  # 'wrote code/train.py (version N, ...)'
    assert args["content"] == f"[cut to fit the context: {len(CODE) + 5} characters; it is on the bus at " \
                              f"code/train.py, version {version}]"
    assert bus.project("p").as_role("viewer").read("code/train.py") == CODE + "# v7\n"


def test_when_the_latest_exchange_alone_is_over_the_budget_its_written_content_goes_too(bus):
    bus.create_project("p")
    small = {**ROLES, "coder": ROLES["coder"].model_copy(update={"context_chars": 15_000})}
    llm = ScriptedLLM({"c1": rewrites(3)})
    result = Agent(bus, llm, roles=small).run("p", Subtask(id="c1", role="coder", goal="write the training script"))
    assert result.status == "finished"
    assert max(context.size(r.messages) for r in llm.requests) <= 15_000
    # The latest tool result is kept whole: the model sees what its last call did.
    assert llm.requests[-1].messages[-1]["content"].startswith("wrote code/train.py (version ")


def test_fit_keeps_every_call_valid_json_and_answers_every_call():
    long = json.dumps({"path": "code/a.py", "content": "y" * 5000, "summary": "s"})
    broken = '{"path": "code/b.py", "content": "' + "z" * 5000  # a call cut at the reply cap
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "go"}]
    for i, args in enumerate((long, broken)):
        messages += [{"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "write_file", "arguments": args}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": f"wrote code/a.py (version {i + 1}, 5000 bytes)"}]
    messages += [{"role": "user", "content": "next"}] * 4
    before = json.dumps(messages)
    assert context.fit(messages, 2_000) == 2 and context.size(messages) <= 2_000
    for m in messages:
        for call in m.get("tool_calls") or []:
            assert isinstance(json.loads(call["function"]["arguments"]), dict)
    assert [m.get("tool_call_id") for m in messages if m["role"] == "tool"] == ["c0", "c1"]
    assert json.loads(before)[2]["tool_calls"][0]["function"]["arguments"] == long  # copied, not changed in place
