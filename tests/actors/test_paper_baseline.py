"""The paper track's baseline: the setup read from the paper (never the rubric), the code
it writes, the policy's phases; the blacklist's matching and the transcript monitor."""

import ast

from actors.blacklist import blocked_source, hits
from actors.orchestrator import OrchestratorConfig
from actors.paper_baseline import read_setup, render
from actors.paper_policy import PaperPolicy
from actors.state import State
from benchmarks.paperbench import Paper, shipped_papers
from cluster.paper_end import monitor_blacklist

PAPER = Paper(shipped_papers()["scaling-knn-vs-forest"])


def test_the_setup_is_read_from_the_paper_and_written_into_the_code():
    config, evidence = read_setup(PAPER.paper_text, PAPER.addendum)
    assert config == {"datasets": ["wine", "breast_cancer"], "models": {"knn": {"n_neighbors": 5},
                      "forest": {"n_estimators": 100, "random_state": 0}}, "folds": 5, "cv_seed": 0}
    assert any("k = 5" in e for e in evidence)
    code = render(config, PAPER.title)
    ast.parse(code)
    for term in ("load_wine", "load_breast_cancer", "KNeighborsClassifier(n_neighbors=5)",
                 "RandomForestClassifier(n_estimators=100, random_state=0", "StratifiedKFold(n_splits=5, shuffle=True",
                 "make_pipeline(StandardScaler(), model)"):
        assert term in code, term
    # Another k in the paper is another k in the code: the values are read, not fixed.
    config, _ = read_setup(PAPER.paper_text.replace("k = 5", "k = 7").replace("100 trees", "300 trees"),
                           PAPER.addendum)
    assert config["models"] == {"knn": {"n_neighbors": 7}, "forest": {"n_estimators": 300, "random_state": 0}}


def test_a_paper_of_another_kind_gets_no_template_and_is_told_why():
    config, evidence = read_setup("# Attention\n\nWe train a transformer on WMT14 with Adam.", "none")
    assert config is None and "load_<name>" in evidence[-1]
    config, evidence = read_setup("We use `load_iris` and a support vector machine.", "")
    assert config is None and "no model the template knows" in evidence[-1]


def test_the_paper_policy_maps_then_fans_out_readers_then_plans_then_writes_then_checks():
    policy = PaperPolicy()
    state = State(config=OrchestratorConfig(project="p", track="paper"))
    assert [(s.id, s.role) for s in policy.decide(state).subtasks] == [("paperread-1", "analyst")]
    state.completed["paperread-1"] = False  # failed: retried once
    assert [s.id for s in policy.decide(state).subtasks] == ["paperread-2"]
    state.completed["paperread-2"] = True
    readers = policy.decide(state).subtasks  # at the same time
    assert [(s.id, s.role) for s in readers] == [("papermethod-1", "analyst"), ("paperexperiments-1", "analyst"),
                                                 ("paperbaselines-1", "analyst")]
    state.completed.update({"papermethod-1": True, "paperexperiments-1": False, "paperbaselines-1": True})
    assert [s.id for s in policy.decide(state).subtasks] == ["paperexperiments-2"]  # only the failed one again
    state.completed["paperexperiments-2"] = True
    assert [(s.id, s.role) for s in policy.decide(state).subtasks] == [("paperplan-1", "planner")]
    state.completed["paperplan-1"] = True
    assert [(s.id, s.role) for s in policy.decide(state).subtasks] == [("paperwrite-1", "writer")]
    state.completed["paperwrite-1"] = True
    assert [(s.id, s.role) for s in policy.decide(state).subtasks] == [("papercheck-1", "writer")]
    state.completed["papercheck-1"] = True
    assert policy.decide(state).stop and "checked" in policy.decide(state).reason
    state.completed["paperwrite-1"] = False
    state.completed["paperwrite-2"] = False
    assert policy.decide(state).stop and "failed twice" in policy.decide(state).reason


def test_blacklist_matching():
    sources = ["https://github.com/Owner/Repo", "paperswithcode.com/paper/x"]
    assert blocked_source("git clone git@github.com:owner/repo", sources) == sources[0]
    assert blocked_source("git clone https://github.com/owner/repo.git", sources) == sources[0]
    assert blocked_source("see http://www.github.com/OWNER/REPO/blob/main/a.py", sources) == sources[0]
    assert blocked_source("github.com/owner/repository", sources) is None
    assert blocked_source("notgithub.com/owner/repo", sources) is None
    assert hits("https://paperswithcode.com/paper/x and github.com/owner/repo", sources) == sources


def test_the_monitor_reads_the_agents_transcripts_not_the_judges(project):
    system = project.as_role("system", "t")
    system.write("logs/llm/coder-1/00000001.json", '{"request": "fetch https://github.com/o/r please"}')
    system.write("logs/llm/judge-r.0/00000002.json", '{"request": "the blacklist names github.com/o/r"}')
    system.write("logs/llm/analyst-1/00000003.json", '{"request": "nothing here"}')
    assert monitor_blacklist(project, ["https://github.com/o/r"]) == [
        "logs/llm/coder-1/00000001.json: https://github.com/o/r"]
    assert monitor_blacklist(project, []) == []
