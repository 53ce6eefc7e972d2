"""The failure reason people read (status, the report): the agent's or model's own
exception, not Ray's task error around it with its coloured traceback (the breaker saw
`RayTaskError(LLMUnavailable): \\x1b[36mray::AgentActor.run()...` in `aisci status`)."""

import ray

from actors.llm.protocol import LLMUnavailable
from actors.orchestrator import failure_line


def test_a_task_error_is_told_by_its_cause_without_colour_codes():
    cause = LLMUnavailable("http://h/v1: the server announced a reply of 70 MB (more than 8 MB)")
    wrapped = ray.exceptions.RayTaskError("AgentActor.run", "\x1b[36mray::AgentActor.run()\x1b[39m (pid=17933)\n"
                                          "  File \"agent.py\", line 1\nLLMUnavailable: ...", cause)
    line = failure_line(wrapped)
    assert line == f"LLMUnavailable: {cause}", line
    assert "\x1b" not in failure_line(ValueError("\x1b[31mred\x1b[0m\nsecond line"))
    assert failure_line(ValueError("x" * 1000)).startswith("ValueError: xxx") and len(failure_line(ValueError("x" * 1000))) == 400
