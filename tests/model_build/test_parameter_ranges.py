"""Parameter ranges are declared once in the pipeline description and refused before anything starts."""

from __future__ import annotations

import io

import pytest

from model_build.parameters import ParameterError, resolve
from model_build.pipeline_spec import PIPELINE, Parameter, ParameterSum, PipelineSpec
from pipelines import cli
from pipelines.commands import run as run_command
from pipelines.local.workspace import Workspace
from pipelines.runners.local import LocalRunner


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"MinAccuracy": 1.5}, "MinAccuracy=1.5 is out of range: it must be from 0 to 1"),
        ({"MinF1Macro": -0.1}, "MinF1Macro=-0.1 is out of range: it must be from 0 to 1"),
        ({"MinAccuracy": float("nan")}, "MinAccuracy=nan is out of range"),
        ({"Epochs": -1}, "Epochs=-1 is out of range: it must be at least 1"),
        ({"Epochs": 0}, "Epochs=0 is out of range: it must be at least 1"),
        ({"LearningRate": 0.0}, "LearningRate=0 is out of range: it must be above 0"),
        ({"TrainBatchSize": 0}, "TrainBatchSize=0 is out of range"),
        ({"ValidationSplitPercentage": 1.2}, "ValidationSplitPercentage=1.2 is out of range"),
        ({"TestSplitPercentage": -0.05, "TrainSplitPercentage": 1.0}, "TestSplitPercentage=-0.05"),
        ({"MaxMissingShare": 2.0}, "MaxMissingShare=2 is out of range"),
        ({"MaxSeqLength": 4096}, "MaxSeqLength=4096 is out of range: it must be from 2 to 512"),
        (
            {"TrainSplitPercentage": 0.8},
            "TrainSplitPercentage 0.8 + ValidationSplitPercentage 0.05 + TestSplitPercentage 0.05 = 0.9; "
            "they must add up to 1",
        ),
    ],
)
def test_values_out_of_range_are_refused_on_both_runners(overrides, words, local):
    with pytest.raises(ParameterError, match="nothing was started") as refused:
        resolve(PIPELINE, overrides, local=local)
    assert words in str(refused.value)


def test_values_inside_the_ranges_pass():
    values = resolve(
        PIPELINE,
        {
            "TrainSplitPercentage": 0.8,
            "ValidationSplitPercentage": 0.1,
            "TestSplitPercentage": 0.1,
            "Epochs": 1,
        },
        local=True,
    )
    assert values["TrainSplitPercentage"] == 0.8 and values["MinAccuracy"] == 0.5


def test_the_local_runner_refuses_before_any_step_or_record(tmp_path):
    workspace = Workspace.open(tmp_path / "run")
    runner = LocalRunner(workspace, console=io.StringIO())
    with pytest.raises(ParameterError, match=r"MinAccuracy=1\.5"):
        runner.run({"MinAccuracy": 1.5})
    assert not runner.executions.list()


def test_the_sagemaker_path_refuses_in_the_cli_before_starting(monkeypatch, capsys):
    started: list[object] = []
    monkeypatch.setattr(run_command, "sagemaker_runner", lambda: started.append("runner"))
    args = ["run", "--sagemaker", "--param", "TrainSplitPercentage=0.5", "--input", "s3://bucket/reviews/"]
    assert cli.main(args) == 2
    assert "they must add up to 1" in capsys.readouterr().err
    assert started == []


def test_a_description_whose_default_is_out_of_range_is_refused():
    with pytest.raises(ValueError, match="default: Epochs=0 is out of range"):
        PipelineSpec(parameters=(Parameter("Epochs", "Integer", 0, "Epochs.", at_least=1),), steps=())
    with pytest.raises(ValueError, match="unknown parameter Nope"):
        PipelineSpec(parameters=(), steps=(), sums=(ParameterSum(("Nope",)),))
