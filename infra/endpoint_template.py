"""Rendering: each stage's endpoint stack, synthesized in-process with the resolved model package.

The template is what ``cdk synth`` would make of :class:`infra.stacks.endpoint_stack.EndpointStack`, with the
stage file's settings and the package ARN baked in, checked by cdk-nag as every stack of the app is, and
synthesized without bootstrap resources (no assets, no ``BootstrapVersion`` rule), so CloudFormation can
deploy it in any account without ``cdk bootstrap``. The deploy pipeline's render action runs it through
``python -m model_deploy render``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from model_build.config import ProjectConfig
from model_deploy.aws.names import (
    check_names,
    endpoint_role_name,
    endpoint_stack_name,
    flow_definition_prefix,
    human_loop_job_role_name,
    human_loop_scheduler_role_name,
    human_review_output_key,
    human_review_role_name,
    human_task_ui_name,
    monitor_job_role_name,
    monitor_metric_namespace,
    monitor_output_key,
    monitor_scheduler_role_name,
)
from model_deploy.aws.release import settings_file, template_file
from model_deploy.aws.render import MonitorInputs, RenderInputs
from model_deploy.stage_config import StageConfig

if TYPE_CHECKING:
    from infra.constructs.drift_monitor import DriftMonitorProps
    from infra.constructs.human_loop_schedule import HumanLoopProps

TEMPLATE_BODY_LIMIT = 51_200
"""CloudFormation's limit on an inline ``TemplateBody``: the deploy step sends templates inline."""


def render_stage(
    config: ProjectConfig,
    stage: StageConfig,
    package_arn: str,
    inputs: RenderInputs,
    outdir: Path,
    *,
    updating: bool,
    model_image: str | None = None,
    package_instance_types: tuple[str, ...] = (),
    monitor_inputs: MonitorInputs | None = None,
    local_storage: bool = False,
) -> Path:
    """Write ``<stage>-template.json`` and ``<stage>-config.json`` into ``outdir``; return the template's path.

    ``model_image`` is the package's serving image: a stage whose instance type it does not fit is refused;
    so is a stage whose instance type is not among ``package_instance_types`` (when the package lists any).
    With ``monitor_inputs`` (and ``inputs.artifacts_bucket_name``), a stage whose file has a
    ``monitoring.schedule_expression`` also gets the drift monitor's schedule, and with
    ``inputs.human_review_workteam_arn`` one whose ``human_review.schedule_expression`` is set also gets the
    human-loop schedule (the job's code is the monitor's, from the same baseline).
    """
    # The CDK starts a Node process on import: only rendering pays for it.
    from aws_cdk import App, BootstraplessSynthesizer, Tags

    from infra.constructs.drift_monitor import DriftMonitorProps
    from infra.constructs.endpoint import ModelEndpointProps
    from infra.nag import add_nag_checks
    from infra.stacks.endpoint_stack import EndpointStack

    check_names(config, [stage.stage])
    props = ModelEndpointProps(
        endpoint_name=config.endpoint_name(stage.stage),
        model_package_arn=package_arn,
        execution_role_name=endpoint_role_name(config, stage.stage),
        stage=stage,
        data_bucket_name=inputs.data_bucket_name,
        data_capture_key=config.data_capture_key(stage.stage),
        encryption_key_arn=inputs.encryption_key_arn,
        updating=updating,
        model_image=model_image,
        package_instance_types=package_instance_types,
        local_storage=local_storage,
    )
    monitor = None
    if monitor_inputs and inputs.artifacts_bucket_name and stage.monitoring.schedule_expression is not None:
        endpoint_name = config.endpoint_name(stage.stage)
        monitor = DriftMonitorProps(
            endpoint_name=endpoint_name,
            monitoring=stage.monitoring,
            baseline_uri=monitor_inputs.baseline_uri,
            captures_uri=f"s3://{inputs.data_bucket_name}/{config.data_capture_key(stage.stage)}/{endpoint_name}",
            output_uri=f"s3://{inputs.artifacts_bucket_name}/{monitor_output_key(endpoint_name)}",
            image_uri=monitor_inputs.image_uri,
            job_role_name=monitor_job_role_name(config),
            scheduler_role_name=monitor_scheduler_role_name(config),
            metric_namespace=monitor_metric_namespace(config),
            encryption_key_arn=inputs.encryption_key_arn,
        )
    human_loops = None
    if monitor is not None and inputs.human_review_workteam_arn and stage.human_review.schedule_expression:
        human_loops = human_loop_props(config, stage, inputs, monitor)
    stack_name = endpoint_stack_name(config, stage.stage)
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cdk-endpoint-") as assembly_dir:
        app = App(outdir=assembly_dir, analytics_reporting=False)
        EndpointStack(
            app,
            stack_name,
            endpoint=props,
            monitor=monitor,
            human_loops=human_loops,
            synthesizer=BootstraplessSynthesizer(),
            description=f"MLOps template: the {stage.stage} endpoint, serving {package_arn}",
        )
        # As the app's stacks are tagged (infra/app_builder.py): on every taggable resource.
        for key, value in config.tags.items():
            Tags.of(app).add(key, value)
        add_nag_checks(app)
        assembly = app.synth()  # raises on a cdk-nag finding that is not acknowledged
        template = assembly.get_stack_by_name(stack_name).template
    body = json.dumps(template, indent=1)
    if len(body.encode()) > TEMPLATE_BODY_LIMIT:
        raise ValueError(
            f"the {stage.stage} template is {len(body)} bytes, over CloudFormation's inline limit"
        )
    path = outdir / template_file(stage.stage)
    path.write_text(body + "\n", encoding="utf-8")
    settings = {"EndpointName": props.endpoint_name, "ModelPackageArn": package_arn, **stage.as_dict()}
    (outdir / settings_file(stage.stage)).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return path


def human_loop_props(
    config: ProjectConfig, stage: StageConfig, inputs: RenderInputs, monitor: DriftMonitorProps
) -> HumanLoopProps:
    """The stage's human-loop job: the drift monitor's baseline, captures and image, and the flow definition
    request with every ARN spelled out (partition, region and account from the project key's ARN), so that its
    name's digest is the same on every render of the same settings."""
    from infra.constructs.human_loop_schedule import HumanLoopProps
    from model_deploy.aws.human_review import FlowDefinitionProps, flow_definition_request

    if not (inputs.human_review_workteam_arn and inputs.artifacts_bucket_name):
        raise ValueError("the human-loop job needs the workteam and the artifacts bucket")
    _, partition, _, region, account, _ = inputs.encryption_key_arn.split(":", 5)
    endpoint = monitor.endpoint_name
    ui_arn = f"arn:{partition}:sagemaker:{region}:{account}:human-task-ui/{human_task_ui_name(endpoint)}"
    request = flow_definition_request(
        FlowDefinitionProps(
            name=flow_definition_prefix(endpoint),
            workteam_arn=inputs.human_review_workteam_arn,
            human_task_ui_arn=ui_arn,
            role_arn=f"arn:{partition}:iam::{account}:role/{human_review_role_name(config)}",
            output_uri=f"s3://{inputs.artifacts_bucket_name}/{human_review_output_key(endpoint)}",
            kms_key_arn=inputs.encryption_key_arn,
            settings=stage.human_review,
        )
    )
    return HumanLoopProps(
        endpoint_name=endpoint,
        human_review=stage.human_review,
        baseline_uri=monitor.baseline_uri,
        captures_uri=monitor.captures_uri,
        flow_definition=request,
        image_uri=monitor.image_uri,
        job_role_name=human_loop_job_role_name(config),
        scheduler_role_name=human_loop_scheduler_role_name(config),
        encryption_key_arn=inputs.encryption_key_arn,
    )
