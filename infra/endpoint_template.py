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

from model_build.config import ProjectConfig
from model_deploy.aws.names import (
    check_names,
    endpoint_role_name,
    endpoint_stack_name,
    monitor_job_role_name,
    monitor_metric_namespace,
    monitor_output_key,
    monitor_scheduler_role_name,
)
from model_deploy.aws.release import settings_file, template_file
from model_deploy.aws.render import MonitorInputs, RenderInputs
from model_deploy.stage_config import StageConfig

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
    monitor_inputs: MonitorInputs | None = None,
    local_storage: bool = False,
) -> Path:
    """Write ``<stage>-template.json`` and ``<stage>-config.json`` into ``outdir``; return the template's path.

    ``model_image`` is the package's serving image: a stage whose instance type it does not fit is refused.
    With ``monitor_inputs`` (and ``inputs.artifacts_bucket_name``), a stage whose file has a
    ``monitoring.schedule_expression`` also gets the drift monitor's schedule.
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
    stack_name = endpoint_stack_name(config, stage.stage)
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cdk-endpoint-") as assembly_dir:
        app = App(outdir=assembly_dir, analytics_reporting=False)
        EndpointStack(
            app,
            stack_name,
            endpoint=props,
            monitor=monitor,
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
