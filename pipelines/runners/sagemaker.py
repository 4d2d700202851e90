"""Run the model-build pipeline on SageMaker: upsert it, start an execution, optionally follow it.

This is what the build CodePipeline's CodeBuild project runs (``python -m pipelines run --sagemaker``). The
CLI imports this module lazily, since it imports the SageMaker SDK. The AWS side is reached through one
``boto3.Session`` (and optionally a given SageMaker client), so tests can stub it.

Environment (set by the CodeBuild project): ``SAGEMAKER_PIPELINE_ROLE_ARN`` (the execution role, required to
run), ``ARTIFACT_BUCKET`` and ``DATA_BUCKET`` (else derived from the account, as CDK names them), and
``MLOPS_PROJECT_NAME`` / ``MLOPS_ENVIRONMENT`` (read by ``model_build.config.load_config``), and
``MLFLOW_TRACKING_SERVER_ARN`` (the project's MLflow tracking server: each execution is a run of it).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import boto3

from model_build.config import ProjectConfig, load_config
from model_build.steps import tracking

if TYPE_CHECKING:
    from sagemaker.mlops.workflow import Pipeline

TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped"})
POLL_SECONDS = 30.0


def stage_instance_types() -> tuple[str, ...]:
    """Every deploy stage's ``endpoint.instance_type`` (the stage files are their one source), in stage order:
    what the registered version lists as ``SupportedRealtimeInferenceInstanceTypes``."""
    from model_deploy.stage_config import load_stages

    return tuple(dict.fromkeys(stage.endpoint.instance_type for stage in load_stages().values()))


def _build(
    parameters: Mapping[str, str],
    require_role: bool,
    boto_session: boto3.Session | None,
    sagemaker_client: Any = None,
) -> tuple[Pipeline, str]:
    """The pipeline (with ``parameters`` as its defaults) and the role it runs as."""
    from model_build.sagemaker_pipeline import (
        aws_settings,
        build_pipeline,
        parse_parameter_overrides,
        pipeline_session,
    )

    config = load_config()
    defaults = parse_parameter_overrides(parameters)
    boto_session = boto_session or boto3.Session(region_name=config.region)
    settings = dataclasses.replace(
        aws_settings(config, boto_session, require_role=require_role),
        serving_instance_types=stage_instance_types(),
    )
    session = pipeline_session(settings, config, boto_session, sagemaker_client)
    return build_pipeline(settings, session, config, defaults), settings.role_arn


def definition_json(parameters: Mapping[str, str], boto_session: boto3.Session | None = None) -> str:
    """The pipeline definition JSON, with ``parameters`` (``name -> value`` strings) as defaults.

    Building it calls AWS for what the SDK needs to write the definition, nothing else:

    - STS ``GetCallerIdentity``, only when ``SAGEMAKER_PIPELINE_ROLE_ARN``, ``ARTIFACT_BUCKET`` or
      ``DATA_BUCKET`` is unset (to name the default role and buckets); set all three to skip it;
    - S3 ``ListBuckets`` (the SDK checks the artifact bucket exists, creating it if not) and ``PutObject``
      of the step code: every job's code, the SDK's drivers and ``runproc.sh`` go to
      ``<artifacts>/<prefix>/...`` under keys named by their content (:mod:`model_build.code_upload`).

    The definition refers to those S3 objects, so there is no fully offline build with the SDK; the tests
    build it against moto.
    """
    pipeline, _ = _build(parameters, require_role=False, boto_session=boto_session)
    return pipeline.definition()


def run_on_sagemaker(
    parameters: Mapping[str, str],
    wait: bool,
    boto_session: boto3.Session | None = None,
    sagemaker_client: Any = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Upsert the pipeline, start it with ``parameters`` and print the execution ARN.

    ``boto_session`` and ``sagemaker_client`` default to the environment's; tests pass stubbed ones.
    With ``wait``, print every step's status change until the execution ends. Returns the exit code:
    0 when started (or, waiting, when it succeeded), 1 when it failed or was stopped. A missing
    ``SAGEMAKER_PIPELINE_ROLE_ARN`` or a bad parameter raises ``ValueError`` naming it, before any AWS call.
    """
    from model_build import images
    from model_build.pipeline_spec import PIPELINE
    from model_build.sagemaker_pipeline import TRACKING_SERVER_VARIABLE, parse_parameter_overrides

    # Unknown names, bad values and an instance type its step's image cannot run on fail before any AWS call.
    problems = images.override_problems(PIPELINE, parse_parameter_overrides(parameters))
    if problems:
        raise ValueError("; ".join(problems))
    # Parameters that shape the definition (a tuning step or plain training) are built into it.
    shaping = {name: value for name, value in parameters.items() if PIPELINE.parameter(name).build_time}
    pipeline, role_arn = _build(shaping, True, boto_session, sagemaker_client)
    response = pipeline.upsert(role_arn=role_arn, description=pipeline_description())
    print(f"Upserted pipeline {response['PipelineArn']}", flush=True)
    s3 = pipeline.sagemaker_session.boto_session.client("s3")
    client = pipeline.sagemaker_session.sagemaker_client
    config = load_config()
    started_with = with_champion(with_input_fingerprints(pipeline, parameters, s3), client, config)
    started_with, run = with_mlflow_run(started_with, config, os.environ.get(TRACKING_SERVER_VARIABLE, ""))
    execution = pipeline.start(parameters=started_with)
    print(f"Started execution {execution.arn}", flush=True)
    run.set_tags(
        {tracking.EXECUTION_TAG: execution.arn.rsplit("/", 1)[-1], "pipeline.execution_arn": execution.arn}
    )
    if not wait:
        return 0
    status = wait_for_execution(client, execution.arn, poll_seconds=poll_seconds, sleep=sleep)
    finish_mlflow_run(run, client, execution.arn, status)
    return 0 if status == "Succeeded" else 1


def with_mlflow_run(
    parameters: Mapping[str, Any],
    config: ProjectConfig,
    tracking_server_arn: str,
    out: Callable[[str], None] = print,
) -> tuple[dict[str, Any], tracking.Tracker]:
    """``parameters`` with ``MlflowRunId`` filled in: a new run of the pipeline's experiment on the tracking
    server, with the parameters and the commit (CodeBuild's ``CODEBUILD_RESOLVED_SOURCE_VERSION``). No server
    set, or one that cannot be reached: the parameters as they were, and the execution runs untracked."""
    from model_build.pipeline_spec import MLFLOW_RUN_PARAMETER

    if not tracking_server_arn or parameters.get(MLFLOW_RUN_PARAMETER, tracking.NO_RUN) != tracking.NO_RUN:
        return dict(parameters), tracking.Tracker(reason="no tracking server, or a run named by the caller")
    commit = os.environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION", "")
    run = tracking.start_pipeline_run(
        tracking_server_arn,
        config.mlflow_experiment_name,
        f"sagemaker-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}",
        {name: value for name, value in parameters.items() if name != MLFLOW_RUN_PARAMETER},
        {
            tracking.PIPELINE_TAG: config.pipeline_name,
            **({tracking.GIT_COMMIT_TAG: commit} if commit else {}),
        },
    )
    if not run.active:
        out(f"MLflow: not tracked ({run.reason})")
        return dict(parameters), run
    out(f"MLflow run {run.run_id} on {tracking_server_arn}")
    return {**parameters, MLFLOW_RUN_PARAMETER: run.run_id}, run


def finish_mlflow_run(run: tracking.Tracker, client: Any, execution_arn: str, status: str) -> None:
    """After a followed execution: the run ends with its status and names the version it registered."""
    if not run.active:
        return  # untracked: no call to list the steps again
    for step in _list_steps(client, execution_arn):
        arn = step.get("Metadata", {}).get("RegisterModel", {}).get("Arn")
        if arn:
            run.set_tags(
                {tracking.MODEL_PACKAGE_ARN_TAG: arn, tracking.MODEL_VERSION_TAG: arn.rsplit("/", 1)[-1]}
            )
    run.end("FINISHED" if status == "Succeeded" else "FAILED")


def with_input_fingerprints(
    pipeline: Pipeline, parameters: Mapping[str, str], s3: Any, out: Callable[[str], None] = print
) -> dict[str, str]:
    """``parameters`` plus, for each fingerprint parameter not given, the digest of the data it describes.

    The location is the override, else the definition's default (the data bucket's raw prefix). One that
    cannot be listed gets a value unique to this run: its steps then miss the cache rather than risk reusing
    a run on other data.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from model_build.data_fingerprint import fingerprint
    from model_build.pipeline_spec import PIPELINE

    defaults = {parameter.name: parameter.default_value for parameter in pipeline.parameters}
    result = dict(parameters)
    for parameter in PIPELINE.parameters:
        source = parameter.fingerprint_of
        if source is None or parameter.name in parameters:
            continue
        uri = str(parameters.get(source) or defaults[source])
        try:
            result[parameter.name] = fingerprint(s3, uri)
            out(f"{source} {uri}: {parameter.name}={result[parameter.name]}")
        except (BotoCoreError, ClientError, ValueError) as error:
            result[parameter.name] = f"unlisted-{uuid.uuid4().hex[:12]}"
            out(
                f"Could not list {source} {uri} ({error}): {parameter.name} is unique to this run, so the "
                "steps that read it are not reused from SageMaker's cache"
            )
    return result


def with_champion(
    parameters: Mapping[str, str], sagemaker: Any, config: ProjectConfig, out: Callable[[str], None] = print
) -> dict[str, str]:
    """``parameters`` plus the champion: the model package the prod endpoint serves, else the newest
    Approved version of the project's group, and its ``ModelDataUrl``, which the evaluation job downloads.

    Resolved here, when the execution starts, so that the execution's parameters say which version it was
    compared with, and SageMaker's cache of the evaluation step misses when the champion changes. A given
    ``ChampionModelPackageArn`` is used as is (its URL looked up unless given too); ``none`` goes without;
    none found leaves both empty, and the evaluation records "no champion". Reading the endpoint and the
    registry needs ``sagemaker:DescribeEndpoint``, ``DescribeEndpointConfig``, ``DescribeModel``,
    ``ListModelPackages`` and ``DescribeModelPackage`` (the build project's role has them).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from model_build.pipeline_spec import CHAMPION_PARAMETER, CHAMPION_URL_PARAMETER
    from model_build.steps.champion import NO_CHAMPION
    from model_deploy.aws.registry import newest_approved
    from model_deploy.aws.serving import NOT_SERVING, current_serving
    from model_deploy.stage_config import STAGES

    result = dict(parameters)
    arn = result.get(CHAMPION_PARAMETER, "").strip()
    if arn.lower() == NO_CHAMPION:
        out(f"Champion: none ({CHAMPION_PARAMETER}=none): the champion check holds without one")
        return {**result, CHAMPION_URL_PARAMETER: ""}
    if not arn and result.get(CHAMPION_URL_PARAMETER):
        out(f"Champion: the model {result[CHAMPION_URL_PARAMETER]} ({CHAMPION_URL_PARAMETER}, no version)")
        return result
    endpoint = config.endpoint_name(STAGES[-1])
    try:
        reason = f"named by {CHAMPION_PARAMETER}"
        if not arn:
            serving = current_serving(sagemaker, endpoint)
            if serving is not None and serving.model_package_arn and serving.status not in NOT_SERVING:
                arn, reason = serving.model_package_arn, f"served by {endpoint}"
            elif (newest := newest_approved(sagemaker, config.model_package_group_name)) is not None:
                arn, reason = newest.arn, "the newest Approved version"
            else:
                out(f"Champion: none yet ({endpoint} serves no version, none is Approved): the check holds")
                return result
        url = result.get(CHAMPION_URL_PARAMETER, "")
        if not url:
            package = sagemaker.describe_model_package(ModelPackageName=arn)
            arn = package["ModelPackageArn"]
            url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    except (BotoCoreError, ClientError) as error:
        raise ValueError(
            f"cannot find the champion ({endpoint}'s model package, else the newest Approved version of "
            f"{config.model_package_group_name}): {error}. Pass --param {CHAMPION_PARAMETER}=<model package "
            f"ARN> and {CHAMPION_URL_PARAMETER}=<its model.tar.gz>, or {CHAMPION_PARAMETER}=none"
        ) from error
    out(f"Champion: {arn} ({reason}), model {url}")
    return {**result, CHAMPION_PARAMETER: arn, CHAMPION_URL_PARAMETER: url}


def pipeline_description() -> str:
    from model_build.pipeline_spec import PIPELINE

    return PIPELINE.description


def wait_for_execution(
    client: Any,
    execution_arn: str,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    out: Callable[[str], None] = print,
) -> str:
    """Poll the execution, print each step's new status, and return the final execution status.

    A failed step prints its failure reason; a failed or stopped execution prints the execution's. A step
    retried under its retry policy says which attempt it is on; a cache hit names the execution it reused.
    """
    seen: dict[str, tuple[str, int]] = {}
    while True:
        steps = _list_steps(client, execution_arn)
        for step in reversed(steps):  # the API lists the most recent first
            name, status, attempt = step["StepName"], step["StepStatus"], step.get("AttemptCount", 1)
            if seen.get(name) != (status, attempt):
                seen[name] = (status, attempt)
                reason = f": {step['FailureReason']}" if step.get("FailureReason") else ""
                retried = f" (attempt {attempt})" if attempt > 1 else ""
                source = step.get("CacheHitResult", {}).get("SourcePipelineExecutionArn")
                cached = f" (cache hit: outputs of {source})" if source else ""
                out(f"  {name}: {status}{retried}{cached}{reason}")
        execution = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        status = execution["PipelineExecutionStatus"]
        if status in TERMINAL_STATUSES:
            reason = f": {execution['FailureReason']}" if execution.get("FailureReason") else ""
            out(f"Execution {status}{reason}")
            return status
        sleep(poll_seconds)


def _list_steps(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"PipelineExecutionArn": execution_arn}
    while True:
        page = client.list_pipeline_execution_steps(**kwargs)
        steps += page.get("PipelineExecutionSteps", [])
        if not page.get("NextToken"):
            return steps
        kwargs["NextToken"] = page["NextToken"]
