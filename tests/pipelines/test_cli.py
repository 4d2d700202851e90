"""The CLI's argument handling: parameters checked against the spec, dispatch to the SageMaker runner."""

from __future__ import annotations

import sys
import types

import pytest

from model_build.parameters import ParameterError, parse_assignments, render, resolve
from model_build.pipeline_spec import PIPELINE
from pipelines import cli
from pipelines.commands.common import TABLE_WIDTH, print_table
from pipelines.local.registry import ApprovalStatus


def test_parameters_are_parsed_by_their_declared_type():
    values = parse_assignments(
        PIPELINE, ["Epochs=2", "MinAccuracy=0.6", "BalanceDataset=False", "PretrainedModel=/models/x"]
    )
    assert values == {
        "Epochs": 2,
        "MinAccuracy": 0.6,
        "BalanceDataset": False,
        "PretrainedModel": "/models/x",
    }
    resolved = resolve(PIPELINE, values, local=True)
    assert resolved["Epochs"] == 2 and resolved["Seed"] == 42
    assert resolved["InputDataUrl"] == "data/reviews_sample.csv"  # the local default, not the AWS one
    assert resolve(PIPELINE, {}, local=False)["PretrainedModel"] == "roberta-base"
    assert render(True) == "true" and render(5e-5) == "5e-05"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("Epoch=2", "no parameter 'Epoch'; valid names: InputDataUrl, "),
        ("Epochs=two", "Epochs is of type Integer"),
        ("BalanceDataset=maybe", "BalanceDataset is of type Boolean"),
        ("Epochs", "expected NAME=VALUE"),
        (
            "TrainingInstanceType=potato",
            "TrainingInstanceType is a SageMaker instance type, ml.<family>.<size>",
        ),
        ("ProcessingInstanceType=ml.c5", "ProcessingInstanceType is a SageMaker instance type"),
        ("ModelApprovalStatus=Foo", "use one of PendingManualApproval, Approved, Rejected"),
    ],
)
def test_bad_parameters_are_clear_errors(assignment, message):
    with pytest.raises(ParameterError, match=message):
        parse_assignments(PIPELINE, [assignment])


@pytest.mark.parametrize(
    "assignment",
    [
        "TrainingInstanceType=ml.p4d.24xlarge",
        "TrainingInstanceType=ml.trn1.32xlarge",
        "ProcessingInstanceType=ml.m5.large",
        "DeployInstanceType=ml.g6e.xlarge",
        "ModelApprovalStatus=Approved",
    ],
)
def test_real_instance_types_and_statuses_are_accepted(assignment):
    name, _, value = assignment.partition("=")
    assert parse_assignments(PIPELINE, [assignment]) == {name: value}


def test_the_specs_approval_statuses_are_the_registrys():
    assert set(PIPELINE.parameter("ModelApprovalStatus").choices) == set(ApprovalStatus)


def test_run_dir_works_before_and_after_the_command(tmp_path, capsys):
    before, after = tmp_path / "before", tmp_path / "after"
    assert cli.main(["--run-dir", str(before), "executions"]) == 0
    assert f"No executions in {before}" in capsys.readouterr().out
    assert cli.main(["--run-dir", str(before), "executions", "--run-dir", str(after)]) == 0
    assert f"No executions in {after}" in capsys.readouterr().out  # the nearer one wins


def test_cli_reports_a_bad_parameter_without_a_traceback(tmp_path, capsys):
    assert cli.main(["run", "--local", "--param", "Epochz=1", "--run-dir", str(tmp_path)]) == 2
    assert "the pipeline has no parameter 'Epochz'" in capsys.readouterr().err


@pytest.fixture
def fake_sagemaker_runner(monkeypatch):
    calls = []
    module = types.ModuleType("pipelines.runners.sagemaker")
    module.run_on_sagemaker = lambda parameters, wait: calls.append(("run", parameters, wait)) or 0
    module.definition_json = lambda parameters: (
        calls.append(("definition", parameters)) or '{"Version": "2020-12-01"}'
    )
    monkeypatch.setitem(sys.modules, "pipelines.runners.sagemaker", module)
    return calls


def test_sagemaker_run_and_definition_dispatch_with_checked_string_parameters(fake_sagemaker_runner, capsys):
    args = ["run", "--sagemaker", "--wait", "--param", "Epochs=2", "--input", "s3://bucket/reviews/"]
    assert cli.main(args) == 0
    assert cli.main(["definition", "--param", "FreezeBertLayer=TRUE"]) == 0
    assert fake_sagemaker_runner == [
        ("run", {"Epochs": "2", "InputDataUrl": "s3://bucket/reviews/"}, True),
        ("definition", {"FreezeBertLayer": "true"}),
    ]
    assert '"Version"' in capsys.readouterr().out


def test_sagemaker_run_refuses_a_local_input(fake_sagemaker_runner, capsys):
    assert cli.main(["run", "--sagemaker", "--input", "data/reviews_sample.csv"]) == 2
    assert "must be an s3:// URI" in capsys.readouterr().err
    assert fake_sagemaker_runner == []


def test_missing_sagemaker_runner_is_said_plainly(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pipelines.runners.sagemaker", None)
    assert cli.main(["definition"]) == 2
    assert "pipelines/runners/sagemaker.py) is not in this checkout" in capsys.readouterr().err


def test_local_commands_on_an_empty_run_folder(tmp_path, capsys):
    assert cli.main(["executions", "--run-dir", str(tmp_path)]) == 0
    assert cli.main(["registry", "list", "--run-dir", str(tmp_path)]) == 0
    assert (
        cli.main(["features", "query", "SELECT count(*) AS n FROM reviews", "--run-dir", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert "No executions" in out and "No versions" in out and "n\n0" in out
    assert cli.main(["executions", "nope", "--run-dir", str(tmp_path)]) == 2
    assert "no single execution 'nope'" in capsys.readouterr().err


def test_local_mode_never_imports_sagemaker(tmp_path, repo_root):
    import subprocess

    code = (
        "import sys; from pipelines import cli; from pipelines.runners import local; "
        f"cli.main(['executions', '--run-dir', {str(tmp_path)!r}]); "
        "assert 'sagemaker' not in sys.modules, 'the local mode imported sagemaker'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=repo_root)


def test_features_query_answers_zero_rows_and_is_read_only(tmp_path, capsys):
    """The CLI shares the page's guard: zero rows print a header, writing or reading elsewhere is refused."""
    run_dir = ["--run-dir", str(tmp_path)]
    assert cli.main(["features", "query", "SELECT review_id, sentiment FROM reviews", *run_dir]) == 0
    assert capsys.readouterr().out.splitlines() == ["review_id  sentiment", "(0 rows)"]

    written = tmp_path / "copied.csv"
    for sql, words in [
        (f"COPY (SELECT 1) TO '{written}'", "only one SELECT statement is allowed here; this is COPY"),
        ("SELECT * FROM read_csv('/etc/passwd')", "/etc/passwd"),
        ("SELECT 1; SELECT 2", "only one SELECT statement"),
    ]:
        assert cli.main(["features", "query", sql, *run_dir]) == 2, sql
        assert words in capsys.readouterr().err, sql
    assert not written.exists()

    with pytest.raises(SystemExit):
        cli.main(["features", "query", "SELECT 1", "--max-rows", "0", *run_dir])
    assert "the row limit must be a whole number from 1 to 10000, not '0'" in capsys.readouterr().err


def test_predict_on_prod_before_the_first_promote_says_what_to_do(tmp_path, capsys):
    """Not 'Endpoint ... of account 000000000000 not found': prod serves nothing until staging is promoted."""
    import os

    from model_deploy.local.state import EndpointRecord, EndpointStore, ServerInfo, now
    from pipelines.local.workspace import Workspace

    workspace = Workspace.open(tmp_path)
    workspace.endpoints_dir.mkdir(parents=True, exist_ok=True)
    ServerInfo(os.getpid(), "http://127.0.0.1:9", "token", now()).write(workspace.endpoints_dir)
    staging = workspace.config.endpoint_name("staging")
    EndpointStore(workspace.endpoints_dir).save({staging: EndpointRecord(staging, "staging", version=1)})
    run_dir = ["--run-dir", str(tmp_path)]
    assert cli.main(["predict", "Lovely dress", "--endpoint", "prod", *run_dir]) == 2
    error = capsys.readouterr().err
    prod = workspace.config.endpoint_name("prod")
    assert f"prod ({prod}) serves nothing yet: promote staging first" in error
    assert "-m pipelines endpoints promote" in error
    EndpointStore(workspace.endpoints_dir).save({})
    assert cli.main(["predict", "Lovely dress", "--endpoint", "staging", *run_dir]) == 2
    assert "serves nothing yet: approve a version first" in capsys.readouterr().err


def test_executions_read_as_text_within_120_columns(tmp_path, monkeypatch, capsys):
    import io

    from pipelines.local.workspace import Workspace
    from pipelines.runners.local import LocalRunner
    from tests.pipelines.toy_pipeline import SPEC, make_repo

    monkeypatch.setenv("TOY_MARKERS", str(tmp_path / "markers"))
    repo, workspace = make_repo(tmp_path / "repo"), Workspace.open(tmp_path / "run")
    for _ in range(2):
        LocalRunner(workspace, SPEC, repo_root=repo, console=io.StringIO()).run()
    capsys.readouterr()
    assert cli.main(["executions", "--run-dir", str(workspace.root)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert all(len(line) <= TABLE_WIDTH for line in listing), listing
    cached = [line for line in listing if "6 steps, 3 cached" in line]  # two runs in one second: any order
    assert len(cached) == 1 and "accuracy 0.9, F1 0.5" in cached[0]

    assert cli.main(["executions", "latest", "--run-dir", str(workspace.root)]) == 0
    detail = capsys.readouterr().out
    assert "{'ExceptionType'" not in detail and "[{'check'" not in detail  # no Python dicts
    assert (
        detail.count("retries    Step.THROTTLING, Step.SERVICE_FAULT: up to 5 retries, first after 10 s") == 1
    )
    assert "check accuracy: metrics.accuracy.value = 0.9 >= 0.5: holds" in detail


def test_a_wide_table_wraps_within_120_columns_and_loses_nothing(capsys):
    print_table(["a", "b"], [["x" * 200, "y" * 30], ["short", "z"]])
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    assert "".join(lines).count("x") == 200 and lines[1].endswith("y" * 30)
    assert lines[-1].startswith("short") and lines[-1].endswith("z")


def test_every_command_module_is_registered_under_its_own_name():
    """A command is one module of pipelines.commands (``register`` and ``run``): one left out of
    ``cli.COMMANDS`` would be unreachable, one named apart from its module hard to find."""
    import importlib
    import pkgutil

    from pipelines import commands

    modules = [
        importlib.import_module(f"pipelines.commands.{info.name}")
        for info in pkgutil.iter_modules(commands.__path__)
    ]
    command_modules = [m for m in modules if hasattr(m, "register") and hasattr(m, "run")]
    assert sorted(m.__name__ for m in command_modules) == sorted(m.__name__ for m in cli.COMMANDS)
    assert [m.NAME for m in cli.COMMANDS] == [m.__name__.rsplit(".", 1)[-1] for m in cli.COMMANDS]
