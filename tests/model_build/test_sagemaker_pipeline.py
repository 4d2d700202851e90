"""The SageMaker definition, built offline (moto S3/STS) from the spec, asserted field by field.

One definition is built per module (importing and running the SDK is slow); every test reads its JSON.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from model_build import images
from model_build import pipeline_spec as ps
from model_build.config import load_config
from tests.model_build.codebuild_environment import (
    ACCOUNT,
    ARTIFACT_BUCKET,
    DATA_BUCKET,
    ENVIRONMENT,
    ROLE_ARN,
    TRACKING_SERVER_ARN,
    mocked_aws,
)


def get(name: str) -> dict[str, str]:
    return {"Get": f"Parameters.{name}"}


def as_string(name: str) -> dict[str, Any]:
    """How a non-string parameter appears where the API wants a string."""
    return {"Std:Join": {"On": "", "Values": [get(name)]}}


@pytest.fixture(scope="module")
def aws() -> Iterator[boto3.Session]:
    with mocked_aws() as session:
        yield session


@pytest.fixture(scope="module")
def built(aws):
    """(definition dict, S3 client) for the real spec with the CodeBuild environment."""
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    config = load_config()
    settings = aws_settings(config, aws, ENVIRONMENT)
    pipeline = build_pipeline(settings, pipeline_session(settings, config, aws), config)
    return json.loads(pipeline.definition()), aws.client("s3")


@pytest.fixture(scope="module")
def definition(built) -> dict[str, Any]:
    return built[0]


@pytest.fixture(scope="module")
def steps(definition) -> dict[str, dict[str, Any]]:
    """Every step by name, the condition's branches included."""
    found = {}
    for step in definition["Steps"]:
        found[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            found.update({inner["Name"]: inner for inner in step["Arguments"].get(branch, [])})
    return found


def test_parameters_are_the_specs_with_the_same_types_and_defaults(definition):
    config = load_config()
    expected = []
    for parameter in ps.PIPELINE.parameters:
        default = parameter.default
        if parameter.name == "InputDataUrl":
            default = f"s3://{DATA_BUCKET}/{config.raw_reviews_prefix}/"
        entry: dict[str, Any] = {"Name": parameter.name, "Type": parameter.type, "DefaultValue": default}
        if parameter.choices:
            entry["EnumValues"] = list(parameter.choices)
        expected.append(entry)
    assert definition["Parameters"] == expected
    assert {p["Name"] for p in definition["Parameters"]} >= {
        "InputDataUrl",
        "ProcessingInstanceType",
        "ProcessingInstanceCount",
        "TrainingInstanceType",
        "TrainingInstanceCount",
        "PretrainedModel",
        "MaxSeqLength",
        "BalanceDataset",
        "TrainSplitPercentage",
        "ValidationSplitPercentage",
        "TestSplitPercentage",
        "Epochs",
        "LearningRate",
        "TrainBatchSize",
        "MinAccuracy",
        "MinF1Macro",
        "MinBaselineMargin",
        "ModelApprovalStatus",
        "DeployInstanceType",
    }
    approval = next(p for p in definition["Parameters"] if p["Name"] == "ModelApprovalStatus")
    assert approval["DefaultValue"] == "PendingManualApproval"
    # SageMaker refuses any other value when an execution starts, not when the registry is reached
    assert approval["EnumValues"] == ["PendingManualApproval", "Approved", "Rejected"]


def test_graph_has_the_specs_steps_in_order_with_the_condition_branches(definition):
    top = [(step["Name"], step["Type"]) for step in definition["Steps"]]
    assert top == [
        (ps.CHECK_DATA, "Processing"),
        (ps.PROCESS, "Processing"),
        (ps.TRAIN, "Training"),
        (ps.EVALUATE, "Processing"),
        (ps.CHECK, "Condition"),
    ]
    condition = definition["Steps"][-1]["Arguments"]
    gate = ps.PIPELINE.step(ps.CHECK)
    assert [s["Name"] for s in condition["IfSteps"]] == list(gate.if_true) == [ps.REGISTER]
    assert [s["Name"] for s in condition["ElseSteps"]] == list(gate.if_false) == [ps.FAIL]
    assert [s["Type"] for s in condition["IfSteps"] + condition["ElseSteps"]] == ["RegisterModel", "Fail"]


def test_each_job_runs_as_its_steps_role_and_the_rest_as_the_execution_role(steps):
    roles = {name: step["Arguments"].get("RoleArn") for name, step in steps.items()}
    config = load_config()
    for name in (ps.CHECK_DATA, ps.PROCESS, ps.TRAIN, ps.EVALUATE):
        assert roles[name] == f"arn:aws:iam::{ACCOUNT}:role/{config.step_role_name(name)}", name
    assert ROLE_ARN not in roles.values(), "no job runs as the pipeline's own role"


def test_job_steps_cache_for_thirty_days(steps):
    for name in (ps.PROCESS, ps.TRAIN, ps.EVALUATE):
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}


def test_processing_runs_the_script_with_the_specs_arguments_on_the_cpu_job_image(steps, built):
    arguments = steps[ps.PROCESS]["Arguments"]
    cluster = arguments["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceType"] == get("ProcessingInstanceType")
    assert cluster["InstanceCount"] == get("ProcessingInstanceCount")
    app = arguments["AppSpecification"]
    assert images.parse(app["ImageUri"]) == images.ImageTag(
        "training", images.FRAMEWORK.torch, "cpu", images.FRAMEWORK.python
    )
    # The job runs as its step's role, in the execution role's account, not as the execution role.
    assert arguments["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{load_config().step_role_name(ps.PROCESS)}"
    args = app["ContainerArguments"]
    expected = []
    for flag, value in ps.PIPELINE.step(ps.PROCESS).arguments.items():
        if isinstance(value, ps.Param):
            parameter = ps.PIPELINE.parameter(value.name)
            value = get(value.name) if parameter.type == "String" else as_string(value.name)
        elif isinstance(value, ps.Config):
            value = getattr(load_config(), value.attribute)
        expected += [flag, value]
    assert args == expected
    assert "--feature-group-name" in args and load_config().feature_group_name in args

    # The entrypoint unpacks the code bundle, installs the pinned requirements, runs the script.
    inputs = {item["InputName"]: item["S3Input"] for item in arguments["ProcessingInputs"]}
    runproc_uri = inputs["entrypoint"]["S3Uri"]
    bucket, key = runproc_uri.removeprefix("s3://").split("/", 1)
    runproc = built[1].get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert "install_requirements.py requirements.txt" in runproc
    assert 'python3 preprocess.py "$@"' in runproc
    assert inputs["code"]["S3Uri"].startswith(f"s3://{ARTIFACT_BUCKET}/")


def test_every_processing_instance_gets_the_whole_input_and_outputs_are_the_specs(steps):
    arguments = steps[ps.PROCESS]["Arguments"]
    raw = next(i for i in arguments["ProcessingInputs"] if i["InputName"] == "raw")["S3Input"]
    assert raw["S3Uri"] == get("InputDataUrl")
    # Instances split the rows themselves (preprocess.Instance): sharding by key would leave one big file to one.
    assert raw["S3DataDistributionType"] == "FullyReplicated"
    assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == get(
        "ProcessingInstanceCount"
    )
    container_arguments = arguments["AppSpecification"]["ContainerArguments"]
    flag = container_arguments.index("--resource-config")
    assert container_arguments[flag + 1] == ps.RESOURCE_CONFIG
    assert raw["LocalPath"] == f"{ps.PROCESSING_INPUT}/data"
    outputs = {o["OutputName"]: o["S3Output"] for o in arguments["ProcessingOutputConfig"]["Outputs"]}
    assert list(outputs) == ["train", "validation", "test", "rejects", "features"]
    for name, output in outputs.items():
        assert output["LocalPath"] == f"{ps.PROCESSING_OUTPUT}/{name}"
        values = output["S3Uri"]["Std:Join"]["Values"]
        assert values[:4] == [
            "s3:/",
            ARTIFACT_BUCKET,
            load_config().pipeline_artifacts_prefix,
            load_config().pipeline_name,
        ]
        assert values[4] == {"Get": "Execution.PipelineExecutionId"}
        assert values[5:] == [ps.PROCESS, name]


def test_training_channels_hyperparameters_and_instances(steps):
    spec = ps.PIPELINE.step(ps.TRAIN)
    arguments = steps[ps.TRAIN]["Arguments"]
    assert arguments["ResourceConfig"]["InstanceType"] == get("TrainingInstanceType")
    assert arguments["ResourceConfig"]["InstanceCount"] == get("TrainingInstanceCount")
    assert images.parse(arguments["AlgorithmSpecification"]["TrainingImage"]) == images.ImageTag(
        "training", images.FRAMEWORK.torch, "gpu", images.FRAMEWORK.python
    )
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in arguments["InputDataConfig"]
    }
    for name, source in spec.channels.items():
        if isinstance(source, ps.StepOutput):
            assert channels[name] == {
                "Get": f"Steps.{source.step}.ProcessingOutputConfig.Outputs['{source.output}'].S3Output.S3Uri"
            }
        else:  # a repository folder, uploaded by the SDK
            assert channels[name].startswith(f"s3://{ARTIFACT_BUCKET}/") and channels[name].endswith(
                f"/{name}"
            )
    # ModelTrainer's own channels: the step code and its drivers.
    assert {"code", "sm_drivers"} <= set(channels)
    assert list(arguments["HyperParameters"]) == list(spec.hyperparameters)
    assert arguments["HyperParameters"]["pretrained-model"] == get("PretrainedModel")
    assert arguments["HyperParameters"]["epochs"] == as_string("Epochs")


def test_training_checkpoints_to_the_artifact_bucket_and_runs_under_torchrun(steps, built):
    arguments = steps[ps.TRAIN]["Arguments"]
    config = load_config()
    checkpoint = arguments["CheckpointConfig"]
    assert checkpoint["LocalPath"] == "/opt/ml/checkpoints"
    assert checkpoint["S3Uri"]["Std:Join"]["Values"] == [
        f"s3://{ARTIFACT_BUCKET}/{config.pipeline_artifacts_prefix}",
        "checkpoints",
        {"Get": "Execution.PipelineExecutionId"},
    ]
    drivers = next(c for c in arguments["InputDataConfig"] if c["ChannelName"] == "sm_drivers")
    bucket, prefix = drivers["DataSource"]["S3DataSource"]["S3Uri"].removeprefix("s3://").split("/", 1)
    s3 = built[1]

    def read(name: str) -> str:
        return s3.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read().decode()

    assert "Torchrun" in read("sm_train.sh")
    source = json.loads(read("sourcecode.json"))
    assert source["entry_script"] == "train.py"
    assert source["requirements"] == "requirements.txt"


def test_metric_definitions_are_the_specs(steps):
    metrics = steps[ps.TRAIN]["Arguments"]["AlgorithmSpecification"]["MetricDefinitions"]
    assert [(m["Name"], m["Regex"]) for m in metrics] == list(ps.PIPELINE.step(ps.TRAIN).metric_definitions)


def test_evaluation_reads_the_model_and_test_split_and_declares_the_report(steps):
    arguments = steps[ps.EVALUATE]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in arguments["ProcessingInputs"]}
    assert inputs["model"] == {"Get": f"Steps.{ps.TRAIN}.ModelArtifacts.S3ModelArtifacts"}
    assert inputs["test"] == {
        "Get": f"Steps.{ps.PROCESS}.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"
    }
    assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert steps[ps.EVALUATE]["PropertyFiles"] == [
        {"PropertyFileName": ps.EVALUATION_REPORT, "OutputName": "evaluation", "FilePath": ps.EVALUATION_FILE}
    ]


def report(path: str) -> dict:
    """A JsonGet on the evaluation report, as the definition spells it."""
    return {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{ps.EVALUATE}.PropertyFiles.{ps.EVALUATION_REPORT}"},
            "Path": path,
        }
    }


def test_the_gate_checks_accuracy_macro_f1_and_the_margins_over_the_baselines_and_the_champion(steps):
    conditions = steps[ps.CHECK]["Arguments"]["Conditions"]
    assert [(c["Type"], c["LeftValue"], c["RightValue"]) for c in conditions] == [
        ("GreaterThanOrEqualTo", report("metrics.accuracy.value"), get("MinAccuracy")),
        ("GreaterThanOrEqualTo", report("metrics.f1_macro.value"), get("MinF1Macro")),
        (
            "GreaterThanOrEqualTo",
            report("f1_macro_margin_over_best_baseline.value"),
            get("MinBaselineMargin"),
        ),
        ("Equals", report("champion_check.holds"), True),
    ]


def test_the_champion_and_its_margin_reach_the_evaluation_job(steps, definition):
    """The champion is the job's to fetch (it may be absent, which a job input could not be), by parameter."""
    arguments = steps[ps.EVALUATE]["Arguments"]["AppSpecification"]["ContainerArguments"]
    passed = dict(zip(arguments[::2], arguments[1::2], strict=False))
    assert passed["--champion-model-package-arn"] == get(ps.CHAMPION_PARAMETER)
    assert passed["--champion-model-url"] == get(ps.CHAMPION_URL_PARAMETER)
    assert passed["--min-champion-margin"] == as_string("MinChampionMargin")
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert parameters["MinChampionMargin"] == {
        "Name": "MinChampionMargin",
        "Type": "Float",
        "DefaultValue": 0.0,
    }
    for name in (ps.CHAMPION_PARAMETER, ps.CHAMPION_URL_PARAMETER):
        assert parameters[name] == {"Name": name, "Type": "String", "DefaultValue": ""}


def test_register_attaches_the_report_to_a_version_in_the_projects_group(steps):
    arguments = steps[ps.REGISTER]["Arguments"]
    assert arguments["ModelPackageGroupName"] == load_config().model_package_group_name
    assert arguments["ModelApprovalStatus"] == get("ModelApprovalStatus")
    statistics = arguments["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                {"Get": f"Steps.{ps.EVALUATE}.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"},
                ps.EVALUATION_FILE,
            ],
        }
    }
    inference = arguments["InferenceSpecification"]
    (container,) = inference["Containers"]
    assert images.parse(container["Image"]) == images.ImageTag(
        "inference", images.FRAMEWORK.torch, "cpu", images.FRAMEWORK.python
    )
    # The evaluation's package (the trained model, plus its int8 ONNX model when it passed the parity check).
    assert container["ModelDataUrl"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                {
                    "Get": f"Steps.{ps.EVALUATE}.ProcessingOutputConfig.Outputs['{ps.PACKAGE_OUTPUT}']"
                    ".S3Output.S3Uri"
                },
                ps.MODEL_ARCHIVE,
            ],
        }
    }
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    register = ps.PIPELINE.step(ps.REGISTER)
    assert inference["SupportedContentTypes"] == list(register.content_types)
    assert {"application/json", "application/jsonlines"} <= set(inference["SupportedContentTypes"])
    assert inference["SupportedResponseMIMETypes"] == list(register.response_types)
    assert inference["SupportedRealtimeInferenceInstanceTypes"] == [get("DeployInstanceType")]


def test_the_jobs_that_log_to_mlflow_get_the_tracking_server_and_the_executions_run(steps):
    """Training and evaluation declare experiment tracking: their jobs get the server's ARN (the
    sagemaker-mlflow plugin's tracking URI) and the run ``pipelines run`` created; no other job does."""
    tracked = {
        "MLFLOW_TRACKING_URI": TRACKING_SERVER_ARN,
        "MLOPS_MLFLOW_RUN_ID": get(ps.MLFLOW_RUN_PARAMETER),
    }
    assert steps[ps.TRAIN]["Arguments"]["Environment"] == tracked
    assert steps[ps.EVALUATE]["Arguments"]["Environment"] == tracked
    for name in (ps.CHECK_DATA, ps.PROCESS):
        assert "MLFLOW_TRACKING_URI" not in steps[name]["Arguments"].get("Environment", {}), name
    # The registered version names the run (`registry describe` on AWS links to it).
    metadata = steps[ps.REGISTER]["Arguments"]["CustomerMetadataProperties"]
    assert metadata[ps.MLFLOW_RUN_PARAMETER] == get(ps.MLFLOW_RUN_PARAMETER)


def test_without_a_tracking_server_no_job_logs_to_mlflow(aws):
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    config = load_config()
    environment = {key: value for key, value in ENVIRONMENT.items() if key != "MLFLOW_TRACKING_SERVER_ARN"}
    settings = aws_settings(config, aws, environment)
    definition = build_pipeline(settings, pipeline_session(settings, config, aws), config).definition()
    assert "MLFLOW_TRACKING_URI" not in definition and "MLOPS_MLFLOW_RUN_ID" not in definition


def test_the_data_check_runs_first_on_the_whole_input_and_processing_waits_for_it(steps):
    check = steps[ps.CHECK_DATA]
    arguments = check["Arguments"]
    (raw,) = arguments["ProcessingInputs"][:1]
    assert raw["S3Input"]["S3Uri"] == get("InputDataUrl")
    assert raw["S3Input"]["S3DataDistributionType"] == "FullyReplicated"  # duplicates span files
    entrypoint = arguments["AppSpecification"]["ContainerEntrypoint"]
    assert entrypoint[-1].endswith("runproc.sh")
    container_arguments = arguments["AppSpecification"]["ContainerArguments"]
    for flag, value in ps.PIPELINE.step(ps.CHECK_DATA).arguments.items():
        position = container_arguments.index(flag)
        expected = value if isinstance(value, str) else None
        if isinstance(value, ps.Param):
            parameter = ps.PIPELINE.parameter(value.name)
            expected = get(value.name) if parameter.type == "String" else as_string(value.name)
        assert container_arguments[position + 1] == expected, flag
    assert container_arguments[container_arguments.index("--exit-message") + 1] == "/opt/ml/output/message"
    assert check["PropertyFiles"] == [
        {"PropertyFileName": ps.DATA_CHECK_REPORT, "OutputName": "report", "FilePath": ps.DATA_CHECK_FILE}
    ]
    assert steps[ps.PROCESS]["DependsOn"] == [ps.CHECK_DATA]


def data_report(path: str) -> dict:
    return {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{ps.CHECK_DATA}.PropertyFiles.{ps.DATA_CHECK_REPORT}"},
            "Path": path,
        }
    }


def test_register_attaches_the_data_check_as_the_pre_training_bias_report_and_its_figures(steps):
    arguments = steps[ps.REGISTER]["Arguments"]
    bias = arguments["ModelMetrics"]["Bias"]["PreTrainingReport"]
    assert bias["ContentType"] == "application/json"
    assert bias["S3Uri"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                {"Get": f"Steps.{ps.CHECK_DATA}.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri"},
                ps.DATA_CHECK_FILE,
            ],
        }
    }
    metadata = arguments["CustomerMetadataProperties"]
    register = ps.PIPELINE.step(ps.REGISTER)
    assert isinstance(register, ps.RegisterStep) and register.data_report_metadata
    for key, path in register.data_report_metadata:
        assert metadata[key] == {"Std:Join": {"On": "", "Values": [data_report(path)]}}
    assert metadata["DataCheckMaxAbsDPL"]["Std:Join"]["Values"][0] == data_report("summary.max_abs_DPL")


def test_fail_message_carries_every_checked_value_and_its_threshold(steps):
    message = steps[ps.FAIL]["Arguments"]["ErrorMessage"]["Std:Join"]
    assert message["On"] == ""
    values = message["Values"]
    for path, threshold in (
        ("metrics.accuracy.value", "MinAccuracy"),
        ("metrics.f1_macro.value", "MinF1Macro"),
        ("f1_macro_margin_over_best_baseline.value", "MinBaselineMargin"),
    ):
        assert values[values.index(report(path)) + 2] == get(threshold)
    assert report("champion_check.message") in values  # the champion comparison, in words
    assert "not registered" in values[0]


def test_a_second_condition_nests_in_the_first_ones_branch(aws):
    """A gate added to the description needs no builder change: its steps nest where its branch says."""
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    gate = ps.PIPELINE.step(ps.CHECK)
    extra = ps.ConditionStep(
        name="CheckAccuracyAgain",
        checks=(
            ps.Check(
                "accuracy", ps.JsonValue(ps.EVALUATE, ps.EVALUATION_REPORT, ps.ACCURACY_JSON_PATH), ">", 0.1
            ),
        ),
        if_true=(ps.REGISTER,),
        if_false=("FailAgain",),
    )
    fail_again = ps.FailStep(name="FailAgain", message=("accuracy below 0.1",))
    steps = []
    for step in ps.PIPELINE.steps:
        if step.name == ps.CHECK:
            steps += [dataclasses.replace(gate, if_true=(extra.name,)), extra]
        else:
            steps.append(step)
    spec = dataclasses.replace(ps.PIPELINE, steps=(*steps, fail_again))
    config = load_config()
    settings = aws_settings(config, aws, ENVIRONMENT)
    definition = json.loads(
        build_pipeline(settings, pipeline_session(settings, config, aws), config, spec=spec).definition()
    )
    outer = definition["Steps"][-1]["Arguments"]
    (inner,) = outer["IfSteps"]
    assert inner["Name"] == "CheckAccuracyAgain" and inner["Type"] == "Condition"
    assert [s["Name"] for s in inner["Arguments"]["IfSteps"]] == [ps.REGISTER]
    assert [s["Name"] for s in inner["Arguments"]["ElseSteps"]] == ["FailAgain"]
    assert [s["Name"] for s in outer["ElseSteps"]] == [ps.FAIL]


def test_a_description_with_a_step_out_of_order_is_refused() -> None:
    steps = list(ps.PIPELINE.steps)
    process, train = ps.PIPELINE.step_names.index(ps.PROCESS), ps.PIPELINE.step_names.index(ps.TRAIN)
    steps[process], steps[train] = steps[train], steps[process]
    with pytest.raises(ValueError, match=f"{ps.TRAIN} uses {ps.PROCESS}, which does not run before it"):
        dataclasses.replace(ps.PIPELINE, steps=tuple(steps))


def test_a_step_depending_on_a_later_one_is_refused() -> None:
    steps = list(ps.PIPELINE.steps)
    steps[0], steps[1] = steps[1], steps[0]
    with pytest.raises(
        ValueError, match=f"{ps.PROCESS} depends on {ps.CHECK_DATA}, which does not run before"
    ):
        dataclasses.replace(ps.PIPELINE, steps=tuple(steps))


def test_a_channel_named_like_model_trainers_own_is_refused(aws):
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    train = ps.PIPELINE.step(ps.TRAIN)
    clash = dataclasses.replace(train, channels={**train.channels, "sm_drivers": ps.SERVING_SOURCE_DIR})
    spec = dataclasses.replace(
        ps.PIPELINE, steps=tuple(clash if s.name == ps.TRAIN else s for s in ps.PIPELINE.steps)
    )
    config = load_config()
    settings = aws_settings(config, aws, ENVIRONMENT)
    with pytest.raises(ValueError, match=r"sm_drivers.*ModelTrainer reserves"):
        build_pipeline(settings, pipeline_session(settings, config, aws), config, spec=spec).definition()


def test_settings_name_the_missing_role_and_derive_buckets_from_the_account(aws):
    from model_build.sagemaker_pipeline import ROLE_ARN_VARIABLE, aws_settings

    config = load_config()
    with pytest.raises(ValueError, match=ROLE_ARN_VARIABLE):
        aws_settings(config, aws, {})
    settings = aws_settings(config, aws, {}, require_role=False)
    assert settings.role_arn == f"arn:aws:iam::{ACCOUNT}:role/{config.execution_role_name}"
    assert settings.job_role_arn(ps.TRAIN) == f"arn:aws:iam::{ACCOUNT}:role/{config.step_role_name(ps.TRAIN)}"
    assert settings.job_role_arn(ps.REGISTER) == settings.role_arn
    with pytest.raises(ValueError, match="is not an IAM role ARN"):
        aws_settings(config, aws, {ROLE_ARN_VARIABLE: "test-execution"})
    assert settings.artifact_bucket == f"{config.artifacts_bucket_prefix}-{ACCOUNT}-us-east-1"
    assert settings.data_bucket == f"{config.data_bucket_prefix}-{ACCOUNT}-us-east-1"


def test_parameter_overrides_are_typed_and_checked():
    from model_build.sagemaker_pipeline import parse_parameter_overrides

    assert parse_parameter_overrides({"Epochs": "2", "MinAccuracy": "0.7", "BalanceDataset": "False"}) == {
        "Epochs": 2,
        "MinAccuracy": 0.7,
        "BalanceDataset": False,
    }
    with pytest.raises(KeyError, match="NoSuchParameter"):
        parse_parameter_overrides({"NoSuchParameter": "1"})
    with pytest.raises(ValueError, match="Epochs"):
        parse_parameter_overrides({"Epochs": "three"})
    with pytest.raises(ValueError, match="BalanceDataset is of type Boolean"):
        parse_parameter_overrides({"BalanceDataset": "maybe"})
    with pytest.raises(ValueError, match=r"MinAccuracy=1\.5 is out of range: it must be from 0 to 1"):
        parse_parameter_overrides({"MinAccuracy": "1.5"})  # refused before the pipeline is built or started


def test_the_code_dir_carries_the_pinned_requirements(repo_root: Path):
    requirements = (repo_root / ps.STEPS_SOURCE_DIR / "requirements.txt").read_text().splitlines()
    pinned = [line for line in requirements if line.strip() and not line.startswith("#")]
    assert pinned and all("==" in line for line in pinned), pinned


@pytest.fixture(scope="module")
def tuned(aws) -> tuple[dict[str, dict[str, Any]], Any]:
    """(steps by name, S3 client) of the definition built with ``TuningMaxJobs=4``."""
    from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session

    config = load_config()
    settings = aws_settings(config, aws, ENVIRONMENT)
    session = pipeline_session(settings, config, aws)
    pipeline = build_pipeline(settings, session, config, defaults={"TuningMaxJobs": 4})
    found = {}
    for step in json.loads(pipeline.definition())["Steps"]:
        found[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            found.update({inner["Name"]: inner for inner in step["Arguments"].get(branch, [])})
    return found, aws.client("s3")


def test_no_tuning_jobs_builds_a_plain_training_step(steps):
    assert ps.PIPELINE.parameter("TuningMaxJobs").default == 0
    assert steps[ps.TRAIN]["Type"] == "Training"


def test_tuning_searches_the_specs_ranges_for_the_best_validation_macro_f1(tuned):
    spec = ps.PIPELINE.step(ps.TRAIN)
    assert isinstance(spec, ps.TuningStep)
    step = tuned[0][ps.TRAIN]
    assert step["Type"] == "Tuning"
    config = step["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": spec.objective}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["RandomSeed"] == get("Seed")
    found = {}
    for kind, entries in config["ParameterRanges"].items():
        for entry in entries:
            found[entry["Name"]] = (kind, entry)
    assert sorted(found) == sorted(r.hyperparameter for r in spec.ranges)
    for search_range in spec.ranges:
        kind, entry = found[search_range.hyperparameter]
        assert kind == f"{search_range.kind}ParameterRanges"
        if search_range.kind == "Categorical":
            assert entry["Values"] == list(search_range.values)
        else:
            assert (
                float(entry["MinValue"]) == search_range.low and float(entry["MaxValue"]) == search_range.high
            )
            assert entry["ScalingType"] == search_range.scaling


def test_each_trial_runs_the_training_script_with_the_other_hyperparameters_fixed(tuned):
    steps, s3 = tuned
    spec = ps.PIPELINE.step(ps.TRAIN)
    job = steps[ps.TRAIN]["Arguments"]["TrainingJobDefinition"]
    static = job["StaticHyperParameters"]
    tuned_names = {r.hyperparameter for r in spec.ranges}  # type: ignore[attr-defined]
    assert set(static) == (set(spec.hyperparameters) - tuned_names) | {
        "sagemaker_program",
        "sagemaker_submit_directory",
    }
    assert static["sagemaker_program"] == spec.script
    # Script mode: the toolkit unpacks this archive into /opt/ml/code, with the requirements it installs.
    bucket, key = static["sagemaker_submit_directory"].removeprefix("s3://").split("/", 1)
    assert bucket == ARTIFACT_BUCKET and key.endswith(".tar.gz")
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as archive:
        assert {spec.script, "requirements.txt"} <= set(archive.getnames())
    metrics = job["AlgorithmSpecification"]["MetricDefinitions"]
    assert [(m["Name"], m["Regex"]) for m in metrics] == list(spec.metric_definitions)
    assert "CheckpointConfig" not in job, "trials must not resume from each other's checkpoints"
    # Each trial logs into a child run of the execution's run, named after its training job.
    assert job["Environment"]["MLOPS_TUNING_TRIAL"] == "1"
    assert job["Environment"]["MLOPS_MLFLOW_RUN_ID"] == get(ps.MLFLOW_RUN_PARAMETER)
    assert job["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{load_config().step_role_name(ps.TRAIN)}"


def test_evaluation_reads_the_best_trials_model(tuned):
    config = load_config()
    inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"] for i in tuned[0][ps.EVALUATE]["Arguments"]["ProcessingInputs"]
    }
    assert inputs["model"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                "s3:/",
                ARTIFACT_BUCKET,
                f"{config.pipeline_artifacts_prefix}/{config.pipeline_name}/models",
                {"Get": f"Steps.{ps.TRAIN}.TrainingJobSummaries[0].TrainingJobName"},
                "output/model.tar.gz",
            ],
        }
    }
