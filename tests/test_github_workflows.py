"""The GitHub Actions workflows pass actionlint, which ``requirements.txt`` installs into the virtualenv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
ACTIONLINT = Path(sys.executable).parent / "actionlint"


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck and pyflakes are optional to actionlint; off, so the result is the same on every machine.
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", *map(str, paths)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_workflow_passes_actionlint() -> None:
    workflows = sorted(WORKFLOWS.glob("*.y*ml"))
    assert workflows, f"no workflow in {WORKFLOWS}"
    result = _actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_a_mistake(tmp_path: Path) -> None:
    """The check above can fail: an undefined input and an untrusted expression in a script are reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/checkout@v5\n"
        "        with:\n"
        "          depth: 1\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    result = _actionlint(broken)
    assert result.returncode == 1
    assert 'input "depth" is not defined' in result.stdout
    assert "potentially untrusted" in result.stdout


def test_ci_runs_the_readmes_commands_on_pull_requests_and_pushes() -> None:
    workflow = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and "push" in triggers
    runs = [step.get("run") for step in workflow["jobs"]["test"]["steps"]]
    assert "make test" in runs and "make synth" in runs
    assert workflow["permissions"] == {"contents": "read"}
    # Only the main-only diff job may ask for an OIDC token.
    for name, job in workflow["jobs"].items():
        if job.get("permissions", {}).get("id-token") == "write":
            assert name == "diff" and "refs/heads/main" in job["if"]


def test_the_diff_job_diffs_the_app_as_deployed() -> None:
    """``cdk diff`` gets the ``-c`` arguments ``cdk deploy`` was given (repository variable CDK_CONTEXT)."""
    diff = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())["jobs"]["diff"]
    (step,) = [step for step in diff["steps"] if "cdk@2 diff" in step.get("run", "")]
    assert step["env"]["CDK_CONTEXT"] == "${{ vars.CDK_CONTEXT }}"
    assert step["run"].rstrip().endswith("$CDK_CONTEXT")
