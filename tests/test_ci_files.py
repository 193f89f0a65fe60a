"""The pre-commit hook and the example workflow: what they promise, checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO


def load(path: str) -> Any:
    return yaml.safe_load((REPO / path).read_text())


def test_pre_commit_hook_validates_the_manifest_directory() -> None:
    (hook,) = load(".pre-commit-hooks.yaml")
    assert (hook["id"], hook["entry"], hook["language"]) == ("runner-validate", "runner validate",
                                                             "python")
    assert hook["pass_filenames"] is False and hook["args"] == ["batches.d/"]
    files, exclude = re.compile(hook["files"]), re.compile(hook["exclude"])
    runs_on = [p for p in ("batches.d/a.yaml", "batches.d/data/rows.csv", "batches.d/batches.lock",
                           "batches.d/results/a.jsonl", "README.md")
               if files.search(p) and not exclude.search(p)]
    assert runs_on == ["batches.d/a.yaml", "batches.d/data/rows.csv"]
    assert Path(REPO / hook["args"][0]).is_dir()


def test_workflow_is_off_by_default_and_applies_one_at_a_time() -> None:
    flow = load(".github/workflows/batch-runner.yml")
    triggers = flow[True]            # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    assert flow["permissions"] == {}
    for job in flow["jobs"].values():
        assert "vars.BATCH_RUNNER_ENABLED == 'true'" in job["if"]
    apply = flow["jobs"]["apply"]
    assert apply["concurrency"] == {"group": "batch-runner-apply", "cancel-in-progress": False}
    assert apply["permissions"] == {"contents": "write"}
    script = "\n".join(step.get("run", "") for step in apply["steps"])
    assert 'runner apply "$BATCHES" --no-wait' in script and "git push" in script
    plan = flow["jobs"]["plan"]
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    plan_script = "\n".join(step.get("run", "") for step in plan["steps"])
    assert "--format markdown" in plan_script
    comment = next(s for s in plan["steps"] if s.get("uses", "").startswith("actions/github-script"))
    assert "updateComment" in comment["with"]["script"]


def test_workflow_gives_the_runs_the_store_a_repository_variable_names() -> None:
    flow = load(".github/workflows/batch-runner.yml")
    assert flow["env"]["RUNNER_STORE"] == "${{ vars.BATCH_RUNNER_STORE }}"
    for job in flow["jobs"].values():
        script = "\n".join(step.get("run", "") for step in job["steps"])
        assert "s3://*) extra=s3fs" in script and 'pip install "$RUNNER_PACKAGE" $extra' in script
