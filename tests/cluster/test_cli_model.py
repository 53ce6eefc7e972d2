"""`aisci run --model openai:M`: the server is asked what it can do before Ray starts
or anything is written; what it cannot do is one line and exit 2."""

from actors.llm.config import LLMConfig
from bus import Bus
from cluster.cli import main
from cluster.cli_run import check_model
from tests.actors.stub_endpoint import StubEndpoint, completion, no_tools

MODELS = [{"id": "smol", "max_model_len": 4096}]


def plain_server(body):
    return no_tools(body) or completion({"content": "pong"})


def test_a_server_that_cannot_serve_is_one_line_and_nothing_is_written(tmp_path, capsys):
    root = tmp_path / "root"
    with StubEndpoint(plain_server, models=MODELS) as server:
        for argv, says in ((["--model", "openai:smoll"], "does not serve the model 'smoll'; it serves smol"),
                           (["--model", "openai:smol", "--tool-calling", "native"], "--tool-calling text")):
            assert main(["--root", str(root), "run", "digits", "--base-url", server.url, *argv]) == 2
            err = capsys.readouterr().err
            assert says in err and err.count("\n") == 1 and "Traceback" not in err
    assert Bus(root).projects() == []


def test_the_mode_found_is_said_on_screen(capsys):
    with StubEndpoint(plain_server, models=MODELS) as server:
        llm = check_model(LLMConfig(backend="openai", base_url=server.url, model="smol", max_retries=0))
    out = capsys.readouterr().out
    assert (llm.tool_calling, llm.context_tokens) == ("text", 4096)
    assert "tool calls text (the server refuses tools: HTTP 400" in out and "context window 4096 tokens" in out


def test_a_sweeps_server_is_asked_too_before_anything_starts(tmp_path, capsys, monkeypatch):
    root, sweep = tmp_path / "root", tmp_path / "sweep.yaml"
    with StubEndpoint(plain_server, models=MODELS) as server:
        monkeypatch.setenv("AISCI_LLM_BASE_URL", server.url)
        sweep.write_text("name: s\ntasks: [digits]\nmodels: ['openai:smoll']\nbudget: 30s\n")
        assert main(["--root", str(root), "sweep", str(sweep)]) == 2
        err = capsys.readouterr().err
        assert "does not serve the model 'smoll'" in err and "Traceback" not in err
    assert Bus(root).projects() == []  # no sweep project, no member: nothing was written
