"""``python -m model_deploy resolve | render | deploy | smoke-test | transform``: rollout, batch scoring; and
``human-review start|collect`` (A2I, :mod:`model_deploy.aws.human_review`) and ``label start|collect`` (Ground
Truth, :mod:`model_deploy.aws.ground_truth`): people's labels back into the pipeline's input.

And ``python -m model_deploy transform --input s3://... --output s3://... --role-arn ARN [--version N]``: a
Batch Transform of the newest approved version (or version N, approved) over an S3 prefix of JSON Lines.

Exit status: 0 when the step did its work or found nothing to do (the message says which), 1 when a deploy or
the smoke test failed, 2 for a usage, input or settings error (a bad stage file, a missing variable, no AWS
credentials or region).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from model_build.aws_setup import aws_setup_problem
from model_build.config import ProjectConfig, load_config
from model_deploy.aws import ground_truth, human_review
from model_deploy.aws.names import (
    ARTIFACT_BUCKET_VARIABLE,
    CLOUDFORMATION_ROLE_VARIABLE,
    DATA_BUCKET_VARIABLE,
    EXECUTION_ID_VARIABLE,
    HUMAN_REVIEW_WORKTEAM_VARIABLE,
    KMS_KEY_ARN_VARIABLE,
    endpoint_stack_name,
)
from model_deploy.aws.registry import ApprovedPackage, newest_approved, package_serving
from model_deploy.aws.release import Release, StagePlan, template_file
from model_deploy.aws.serving import current_serving
from model_deploy.stage_config import STAGES, StageConfigError, load_stages

ClientFactory = Callable[[str], Any]


class UsageError(Exception):
    """Exit status 2: the command cannot run as given."""


def _boto3_client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def _require(variable: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise UsageError(f"${variable} is not set (the deploy pipeline's CodeBuild project sets it)")
    return value


def plan_release(config: ProjectConfig, sagemaker: Any) -> tuple[Release, dict[str, bool]]:
    """The newest approved version and, per stage, whether it must be deployed; and which endpoints exist."""
    group = config.model_package_group_name
    package: ApprovedPackage | None = newest_approved(sagemaker, group)
    plans: dict[str, StagePlan] = {}
    exists: dict[str, bool] = {}
    for stage in STAGES:
        endpoint = config.endpoint_name(stage)
        serving = current_serving(sagemaker, endpoint)
        exists[stage] = serving is not None
        action: Literal["deploy", "current", "none"] = "none"
        if package is not None:
            action = "current" if serving is not None and serving.serves(package.arn) else "deploy"
        plans[stage] = StagePlan(
            stage=stage,
            endpoint_name=endpoint,
            stack_name=endpoint_stack_name(config, stage),
            action=action,
            serving=serving.model_package_arn if serving else None,
        )
    if package is None:
        message = f"No approved model version in {group}: nothing to deploy, no endpoint touched."
    elif all(plan.action == "current" for plan in plans.values()):
        message = f"Every stage already serves {package.describe()}: nothing to deploy."
    else:
        todo = ", ".join(stage for stage, plan in plans.items() if plan.action == "deploy")
        message = f"Rolling out {package.describe()} to {todo}."
    release = Release(
        model_package_arn=package.arn if package else None,
        model_package_version=package.version if package else None,
        stages=plans,
        message=message,
    )
    return release, exists


def _print_plan(release: Release) -> None:
    print(release.message)
    for plan in release.stages.values():
        said = {"deploy": "will be deployed", "current": "already serves it: left alone", "none": "untouched"}
        print(f"  {plan.stage}: {plan.endpoint_name} serves {plan.serving or 'nothing'}; {said[plan.action]}")


def cmd_resolve(args: argparse.Namespace, clients: ClientFactory) -> int:
    release, _ = plan_release(load_config(), clients("sagemaker"))
    _print_plan(release)
    if args.json:
        print(json.dumps({"ModelPackageArn": release.model_package_arn, "Message": release.message}))
    return 0


def cmd_render(args: argparse.Namespace, clients: ClientFactory) -> int:
    from infra.endpoint_template import render_stage
    from model_deploy.aws.render import RenderInputs, has_local_storage

    config = load_config()
    stages = load_stages()  # a bad stage file stops here, before anything is looked up
    release, exists = plan_release(config, clients("sagemaker"))
    _print_plan(release)
    outdir = Path(args.out)
    if not release.nothing_to_do and release.model_package_arn is not None:
        from model_deploy.aws.monitoring import monitor_inputs

        artifacts = os.environ.get(ARTIFACT_BUCKET_VARIABLE, "").strip() or None
        workteam = os.environ.get(HUMAN_REVIEW_WORKTEAM_VARIABLE, "").strip() or None
        inputs = RenderInputs(
            _require(DATA_BUCKET_VARIABLE), _require(KMS_KEY_ARN_VARIABLE), artifacts, workteam
        )
        monitor = monitor_inputs(clients("sagemaker"), release.model_package_arn) if artifacts else None
        if monitor is None:
            print(
                f"  no drift monitor: {'the package has no evaluation report' if artifacts else 'no ' + ARTIFACT_BUCKET_VARIABLE}"
            )
        serving = package_serving(clients("sagemaker"), release.model_package_arn)
        for stage, stage_config in stages.items():
            path = render_stage(
                config,
                stage_config,
                release.model_package_arn,
                inputs,
                outdir,
                updating=exists[stage],
                model_image=serving.image,
                package_instance_types=serving.realtime_instance_types,
                monitor_inputs=monitor,
                local_storage=has_local_storage(clients("ec2"), stage_config.endpoint.instance_type),
            )
            print(f"  {stage}: rendered {path}")
    release.write(outdir)
    execution_id = args.execution_id or os.environ.get(EXECUTION_ID_VARIABLE)
    if release.nothing_to_do:
        if execution_id:
            from model_deploy.aws.execution import stop_execution

            stop_execution(
                clients("codepipeline"), config.deploy_pipeline_name, execution_id, release.message
            )
            print(f"Stopping execution {execution_id} of {config.deploy_pipeline_name}: {release.message}")
        else:
            print("No pipeline execution id given: the later actions will find nothing to do.")
    return 0


def cmd_deploy(args: argparse.Namespace, clients: ClientFactory) -> int:
    from model_deploy.aws.deploy import DeployFailed, StackDeployer, StageDeployment, deploy_stage

    release = Release.read(Path(args.release))
    plan = release.stages[args.stage]
    if release.nothing_to_do or release.model_package_arn is None:
        print(f"{args.stage}: {release.message}")
        return 0
    from model_deploy.smoke_test import run_smoke_test

    template = json.loads((Path(args.release) / template_file(args.stage)).read_text(encoding="utf-8"))
    runtime = clients("sagemaker-runtime")

    def smoke_test(endpoint: str) -> tuple[bool, str]:
        report = run_smoke_test(runtime, endpoint)
        return report.passed, "; ".join([report.summary(), *report.failures])

    def bake_traffic() -> None:
        run_smoke_test(runtime, plan.endpoint_name)

    # The bake of a blue/green update gets the smoke test's requests, so the rollback alarms can act.
    deployer = StackDeployer(
        clients("cloudformation"), _require(CLOUDFORMATION_ROLE_VARIABLE), during_update=bake_traffic
    )
    target = StageDeployment(
        args.stage, plan.endpoint_name, plan.stack_name, release.model_package_arn, template
    )
    try:
        deploy_stage(clients("sagemaker"), deployer, target, smoke_test)
    except DeployFailed as error:
        print(f"{args.stage}: deploy FAILED: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_smoke_test(args: argparse.Namespace, clients: ClientFactory) -> int:
    from model_deploy.smoke_test import run_smoke_test, wait_in_service

    if args.release:
        release = Release.read(Path(args.release))
        if release.model_package_arn is None:
            print(f"smoke test of {args.endpoint} skipped: {release.message}")
            return 0
    try:
        wait_in_service(clients("sagemaker"), args.endpoint, timeout_seconds=args.timeout)
    except Exception as error:
        if aws_setup_problem(error):  # not the endpoint's fault: main() says what is missing
            raise
        print(
            f"smoke test of {args.endpoint} FAILED: the endpoint is not InService: {error}", file=sys.stderr
        )
        return 1
    report = run_smoke_test(clients("sagemaker-runtime"), args.endpoint)
    print(report.summary())
    for failure in report.failures:
        print(f"  - {failure}", file=sys.stderr)
    if args.report:
        Path(args.report).write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return 0 if report.passed else 1


def cmd_transform(args: argparse.Namespace, clients: ClientFactory) -> int:
    from model_deploy.aws.batch_transform import TransformPlan, job_name, start_transform
    from model_deploy.aws.registry import approved_version

    config = load_config()
    sagemaker = clients("sagemaker")
    group = config.model_package_group_name
    package = (
        newest_approved(sagemaker, group)
        if args.version is None
        else approved_version(sagemaker, group, args.version)
    )
    if package is None:
        wanted = "approved version" if args.version is None else f"approved version {args.version}"
        raise UsageError(f"{group} has no {wanted}: approve one first")
    plan = TransformPlan(
        model_package_arn=package.arn,
        input_uri=args.input,
        output_uri=args.output,
        role_arn=args.role_arn,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        kms_key_arn=args.kms_key_arn or os.environ.get(KMS_KEY_ARN_VARIABLE) or None,
        id_field=args.id_field,
    )
    name = job_name(config, package.version)
    arn = start_transform(sagemaker, plan, name, config)
    print(f"Started batch transform {arn}: {package.describe()} over {plan.input_uri} -> {plan.output_uri}")
    return 0


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} instances: a transform needs at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_deploy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    resolve = commands.add_parser("resolve", help="the newest approved version, and what each stage serves")
    resolve.add_argument("--json", action="store_true", help="also print the decision as one JSON line")
    resolve.set_defaults(run=cmd_resolve)
    render = commands.add_parser("render", help="write release.json and each stage's endpoint template")
    render.add_argument("--out", required=True, help="the folder for release.json and the templates")
    render.add_argument(
        "--execution-id",
        help=f"this deploy pipeline execution (default ${EXECUTION_ID_VARIABLE}): stopped when there is nothing to do",
    )
    render.set_defaults(run=cmd_render)
    deploy = commands.add_parser(
        "deploy", help="put one stage's rendered template live through CloudFormation"
    )
    deploy.add_argument("--stage", required=True, choices=STAGES)
    deploy.add_argument("--release", required=True, help="the folder render wrote")
    deploy.set_defaults(run=cmd_deploy)
    smoke = commands.add_parser(
        "smoke-test", help="wait for InService, then invoke the endpoint and check answers"
    )
    smoke.add_argument("--endpoint", required=True)
    smoke.add_argument("--release", help="the folder render wrote: skip when nothing was approved")
    smoke.add_argument("--report", help="also write the report as JSON to this file")
    smoke.add_argument("--timeout", type=int, default=3600, help="seconds to wait for InService")
    smoke.set_defaults(run=cmd_smoke_test)
    transform = commands.add_parser(
        "transform", help="a Batch Transform of an approved version over an S3 prefix of JSON Lines reviews"
    )
    transform.add_argument("--input", required=True, help='s3:// prefix of {"review_id", "features"} lines')
    transform.add_argument("--output", required=True, help="s3:// prefix for the .out files")
    transform.add_argument(
        "--role-arn",
        required=True,
        help="the role the job runs as: reads the model artifact and --input, writes --output (see docs/approvers.md)",
    )
    transform.add_argument("--version", type=int, help="this approved version (default: the newest)")
    transform.add_argument("--instance-type", default="ml.m5.xlarge")
    transform.add_argument("--instance-count", type=_at_least_one, default=1)
    transform.add_argument("--kms-key-arn", help=f"output and volume key (default ${KMS_KEY_ARN_VARIABLE})")
    transform.add_argument("--id-field", default="review_id", help="the id kept beside each answer")
    transform.set_defaults(run=cmd_transform)
    human_review.add_parser(commands)
    ground_truth.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, clients: ClientFactory = _boto3_client) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args, clients)
    except (UsageError, StageConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        problem = aws_setup_problem(error)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2
