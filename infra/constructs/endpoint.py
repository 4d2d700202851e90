"""A stage's SageMaker endpoint for one model package, updated with deployment guardrails; and its model's role.

``ModelEndpoint`` makes, from the stage file's settings (``model_deploy/stages/<stage>.json``):

- a Model from the approved model package, with the serving container's batching variables;
- an EndpointConfig with data capture (requests and responses, JSON and CSV declared so captures are text, not
  base64) into the KMS-encrypted data bucket under the stage's prefix, and the key on the ML storage volume;
- the Endpoint, whose updates are blue/green (canary, linear or all at once, with baking) and roll back
  automatically when one of the two alarms defined here fires (5xx errors, model latency);
- target-tracking autoscaling on invocations per instance.

Names: the Model and EndpointConfig are replaced (never updated) by CloudFormation, so their names carry a
digest of what they are made of; a new version gets new names, and the old ones are deleted after the
update. The variant keeps its name (:data:`model_deploy.aws.names.VARIANT_NAME`) across versions, which
blue/green updates require.

An update that changes the instance type of an autoscaled variant is refused by SageMaker, and CloudFormation
does not deregister the scalable target first (aws/aws-cdk#29626): ``python -m model_deploy deploy`` removes
the autoscaling in a first stack update when the live instance type differs, and this template puts it back
(see ``model_deploy.aws.deploy``). The scalable target depends on the endpoint, so CloudFormation registers
it only after the endpoint update.

``EndpointExecutionRole`` is the role a stage's model runs as. It lives in the deploy-pipeline stack (created
with ``cdk deploy``), not in the endpoint stack, so the role that deploys endpoint stacks never creates IAM.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.constructs.framework_images import framework_images, grant_pull_framework_images
from infra.constructs.grants import add_statements, grant_write_logs
from infra.constructs.project_storage import ProjectStorage
from infra.nag import acknowledge, nag_spelling
from model_build import images
from model_deploy.aws.names import MODEL_NAME_DIGEST_LENGTH, VARIANT_NAME, alarm_names
from model_deploy.stage_config import StageConfig

NAMESPACE = "AWS/SageMaker"
JSON_CONTENT_TYPES = ("application/json", "application/jsonlines")
CSV_CONTENT_TYPES = ("text/csv",)
"""The request and response types of ``model_deploy/serving/inference.py``; captures of them stay text."""
SAGEMAKER_NAME_LIMIT = 63
_DIGEST_LENGTH = MODEL_NAME_DIGEST_LENGTH


def canary_problem(stage: StageConfig) -> str | None:
    """Why the stage's traffic shift cannot work on its smallest fleet, or None.

    A canary (or linear step) is a share of the variant's instances, and SageMaker needs it to be at least one
    instance and at most half of them: on a fleet of one, no share is both. Such a stage must shift
    ``ALL_AT_ONCE``, which is still blue/green with baking and rollback.
    """
    routing = stage.deployment.traffic_routing
    if routing == "ALL_AT_ONCE":
        return None
    smallest = min(stage.endpoint.initial_instance_count, stage.autoscaling.min_instances)
    if smallest * stage.deployment.canary_size_percent / 100 < 1:
        return (
            f"{stage.stage}: a {routing} step of {stage.deployment.canary_size_percent}% of {smallest} instance(s) "
            "is less than one instance; use traffic_routing ALL_AT_ONCE (still blue/green, with baking and "
            "rollback) or more instances"
        )
    return None


@dataclass(frozen=True)
class ModelEndpointProps:
    endpoint_name: str
    model_package_arn: str
    execution_role_name: str
    """The stage's :class:`EndpointExecutionRole` (created by the deploy-pipeline stack)."""
    stage: StageConfig
    data_bucket_name: str
    data_capture_key: str
    """``data-capture/<stage>``: SageMaker writes ``<key>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``."""
    encryption_key_arn: str
    updating: bool = False
    """The endpoint exists: keep its live instance count through the update (it may have scaled out).
    CloudFormation refuses ``RetainAllVariantProperties`` when it creates an endpoint."""
    variant_name: str = VARIANT_NAME
    local_storage: bool = False
    """Whether the stage's instance type has local instance storage (``render``'s EC2 lookup): then the
    endpoint config takes no KmsKeyId."""
    model_image: str | None = None
    """The serving image of the model package (its ``InferenceSpecification``), when known: the endpoint
    runs that image on the stage's instance type, so a CPU image on a GPU instance or the reverse is refused."""
    package_instance_types: tuple[str, ...] = ()
    """The package's ``SupportedRealtimeInferenceInstanceTypes`` (empty: it lists none, or unknown): a stage
    whose instance type is not among them is refused."""

    def __post_init__(self) -> None:
        problem = canary_problem(self.stage)
        if problem:
            raise ValueError(problem)
        instance_type = self.stage.endpoint.instance_type
        # The list is optional for versioned packages and the API reference names no check of it when an
        # endpoint config is created (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_InferenceSpecification.html):
        # nothing on AWS would stop a stage serving a version on an instance type it was not registered for.
        if self.package_instance_types and instance_type not in self.package_instance_types:
            raise ValueError(
                f"{self.stage.stage}: the model package {self.model_package_arn} lists "
                f"{', '.join(self.package_instance_types)} for real-time inference, not {instance_type} "
                f"(endpoint.instance_type in model_deploy/stages/{self.stage.stage}.json). Register a version for it "
                f"(`pipelines run --sagemaker` registers every stage's instance type), or serve on a listed type"
            )
        if self.model_image is not None:
            try:
                images.check_fits(self.model_image, instance_type, framework=None)
            except images.ImageMismatch as error:
                raise ValueError(
                    f"{self.stage.stage}: the model package {self.model_package_arn} cannot serve on "
                    f"{instance_type}: {error}. Set endpoint.instance_type in the stage file, or register "
                    f"the model for this instance type (the pipeline's DeployInstanceType)"
                ) from None
        longest = len(self.endpoint_name) + len("-") + len(self.package_version) + len("-") + _DIGEST_LENGTH
        if longest > SAGEMAKER_NAME_LIMIT:
            raise ValueError(
                f"endpoint name {self.endpoint_name!r} is too long: its model names reach {longest} "
                f"characters, SageMaker allows {SAGEMAKER_NAME_LIMIT}; shorten the project name or environment"
            )

    @property
    def package_version(self) -> str:
        """The version at the end of the package ARN (``.../<group>/<version>``), for readable model names."""
        return self.model_package_arn.rsplit("/", 1)[-1]


APPLICATION_AUTOSCALING_SLR = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


@dataclass(frozen=True)
class StageEndpoints:
    """The stages' endpoints by name, and the grants on them, as CDK's ``Endpoint.fromEndpointName`` and its
    ``grantInvoke``: the endpoints exist only once the deploy pipeline has deployed their stacks (one per stage,
    :class:`ModelEndpoint`), so what may use them is granted here, on the names they will have."""

    scope: Construct
    """Where the ARNs are built (its stack's partition, region and account)."""
    names: tuple[str, ...]

    def _arn(self, resource: str, name: str) -> str:
        return Stack.of(self.scope).format_arn(service="sagemaker", resource=resource, resource_name=name)

    @property
    def arns(self) -> list[str]:
        return [self._arn("endpoint", name) for name in self.names]

    @property
    def part_arns(self) -> list[str]:
        """Their models and endpoint configs, named ``<endpoint>-<version>-<digest>`` (:class:`ModelEndpoint`)."""
        return [self._arn(kind, f"{name}-*") for name in self.names for kind in ("model", "endpoint-config")]

    def grant_describe(
        self, grantee: iam.IGrantable, *, sid: str = "DescribeEndpoints"
    ) -> list[iam.PolicyStatement]:
        """Read what each endpoint serves: the endpoint, its config and its model."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid=sid,
                actions=[
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DescribeModel",
                ],
                resources=[*self.arns, *self.part_arns],
            ),
        )

    def grant_invoke(self, grantee: iam.IGrantable, *, describe: bool = False) -> list[iam.PolicyStatement]:
        """Invoke the endpoints; with ``describe``, also read their status (to wait for ``InService``)."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="InvokeEndpoints",
                actions=[*(["sagemaker:DescribeEndpoint"] if describe else []), "sagemaker:InvokeEndpoint"],
                resources=self.arns,
            ),
        )

    def grant_deploy(self, grantee: iam.IGrantable) -> list[iam.PolicyStatement]:
        """What CloudFormation calls to create, update and delete the endpoints, their configs and models, and
        their tags (the handlers of the three resource types)."""
        tagging = ["sagemaker:AddTags", "sagemaker:ListTags", "sagemaker:DeleteTags"]
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="EndpointResources",
                actions=[
                    "sagemaker:CreateModel",
                    "sagemaker:DeleteModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DeleteEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:UpdateEndpointWeightsAndCapacities",
                    *tagging,
                ],
                resources=[*self.arns, *self.part_arns],
            ),
        )

    def grant_deploy_alarms_and_scaling(self, grantee: iam.IGrantable) -> list[iam.PolicyStatement]:
        """What CloudFormation calls for the rest of an endpoint stack: the rollback alarms, the target tracking
        alarms Application Auto Scaling names after each variant, the scalable targets and their policies."""
        stack = Stack.of(self.scope)
        alarms = [arn for name in self.names for arn in rollback_alarm_arns(stack, name)]
        # Target tracking creates its own alarms, named after the scalable resource.
        target_tracking_alarms = [
            stack.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=f"TargetTracking-endpoint/{name}/variant/*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for name in self.names
        ]
        scalable_targets = stack.format_arn(
            service="application-autoscaling", resource="scalable-target", resource_name="*"
        )
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="RollbackAlarms",
                actions=[
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:DeleteAlarms",
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:TagResource",
                    "cloudwatch:UntagResource",
                    "cloudwatch:ListTagsForResource",
                ],
                resources=[*alarms, *target_tracking_alarms],
            ),
            iam.PolicyStatement(
                sid="Autoscaling",
                actions=[
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DeleteScalingPolicy",
                    "application-autoscaling:TagResource",
                    "application-autoscaling:UntagResource",
                    "application-autoscaling:ListTagsForResource",
                ],
                resources=[scalable_targets],
            ),
            # AWS requires "*": application-autoscaling:DescribeScalableTargets has no resource-level permissions.
            iam.PolicyStatement(
                sid="DescribeScalableTargets",
                actions=["application-autoscaling:DescribeScalableTargets"],
                resources=["*"],
            ),
            # AWS requires "*": application-autoscaling:DescribeScalingPolicies has no resource-level permissions.
            # AWS requires "*": application-autoscaling:DescribeScheduledActions (ScalableTarget's handlers).
            iam.PolicyStatement(
                sid="DescribeScalingPolicies",
                actions=[
                    "application-autoscaling:DescribeScalingPolicies",
                    "application-autoscaling:DescribeScheduledActions",
                ],
                resources=["*"],
            ),
            # AWS requires "*": cloudwatch:GetMetricData has no resource-level permissions; the ScalingPolicy
            # handlers call it to check the target tracking metric (AWS::ApplicationAutoScaling::ScalingPolicy).
            iam.PolicyStatement(
                sid="ReadScalingMetric", actions=["cloudwatch:GetMetricData"], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="AutoscalingServiceLinkedRole",
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    stack.format_arn(
                        service="iam", region="", resource="role", resource_name=APPLICATION_AUTOSCALING_SLR
                    )
                ],
                conditions={
                    "StringEquals": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
                },
            ),
        )


def rollback_alarm_arns(stack: Stack, endpoint_name: str) -> list[str]:
    """The ARNs of the alarms that roll back an update of ``endpoint_name`` (:func:`alarm_names`)."""
    return [
        stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        for name in alarm_names(endpoint_name).values()
    ]


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[
        :_DIGEST_LENGTH
    ]


class ModelEndpoint(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ModelEndpointProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.endpoint_name = props.endpoint_name
        self.variant_name = props.variant_name
        stage = props.stage
        environment = stage.serving.container_environment()
        execution_role_arn = stack.format_arn(
            service="iam", region="", resource="role", resource_name=props.execution_role_name
        )
        model_name = "-".join(
            (
                props.endpoint_name,
                props.package_version,
                _digest(props.model_package_arn, props.execution_role_name, environment),
            )
        )
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            model_name=model_name,
            execution_role_arn=execution_role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                model_package_name=props.model_package_arn, environment=environment
            ),
        )

        capture = {
            "destination": f"s3://{props.data_bucket_name}/{props.data_capture_key}",
            "sampling": stage.data_capture.sampling_percentage,
            "key": props.encryption_key_arn,
        }
        variant = {
            "model": model_name,
            "variant": props.variant_name,
            "instance_type": stage.endpoint.instance_type,
            "instances": stage.endpoint.initial_instance_count,
        }
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            endpoint_config_name="-".join(
                (props.endpoint_name, props.package_version, _digest(capture, variant))
            ),
            # SageMaker refuses a KmsKeyId for instance types with local (NVMe) storage, which a hardware
            # module on the instance encrypts (CreateEndpointConfig's KmsKeyId, botocore's service model).
            kms_key_id=None if props.local_storage else props.encryption_key_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=props.variant_name,
                    model_name=self.model.attr_model_name,
                    instance_type=stage.endpoint.instance_type,
                    initial_instance_count=stage.endpoint.initial_instance_count,
                    initial_variant_weight=1.0,
                )
            ],
            data_capture_config=sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=stage.data_capture.sampling_percentage > 0,
                initial_sampling_percentage=stage.data_capture.sampling_percentage,
                destination_s3_uri=capture["destination"],
                kms_key_id=props.encryption_key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                ],
                capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                    json_content_types=list(JSON_CONTENT_TYPES), csv_content_types=list(CSV_CONTENT_TYPES)
                ),
            ),
        )

        names = alarm_names(props.endpoint_name)
        alarms = stage.alarms
        self.errors_alarm = cloudwatch.Alarm(
            self,
            "Invocation5XXErrorsAlarm",
            alarm_name=names["Invocation5XXErrors"],
            alarm_description=f"More than {alarms.max_invocation_5xx_errors} 5xx answers of "
            f"{props.endpoint_name} per {alarms.period_seconds}s; rolls back an update in progress",
            metric=self.metric_invocation_5xx_errors(period=Duration.seconds(alarms.period_seconds)),
            threshold=alarms.max_invocation_5xx_errors,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=alarms.evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.latency_alarm = cloudwatch.Alarm(
            self,
            "ModelLatencyAlarm",
            alarm_name=names["ModelLatency"],
            alarm_description=f"{props.endpoint_name}'s average model latency above "
            f"{alarms.max_model_latency_ms} ms; rolls back an update in progress",
            metric=self.metric_model_latency(period=Duration.seconds(alarms.period_seconds)),
            # ModelLatency is reported in microseconds.
            threshold=alarms.max_model_latency_ms * 1000,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=alarms.evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        deployment = stage.deployment
        routing: dict[str, object] = {
            "type": deployment.traffic_routing,
            "wait_interval_in_seconds": deployment.wait_seconds,
        }
        step = sagemaker.CfnEndpoint.CapacitySizeProperty(
            type="CAPACITY_PERCENT", value=deployment.canary_size_percent
        )
        if deployment.traffic_routing == "CANARY":
            routing["canary_size"] = step
        elif deployment.traffic_routing == "LINEAR":
            routing["linear_step_size"] = step
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=props.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            deployment_config=sagemaker.CfnEndpoint.DeploymentConfigProperty(
                blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                    traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                        **routing
                    ),
                    termination_wait_in_seconds=deployment.termination_wait_seconds,
                    maximum_execution_timeout_in_seconds=deployment.maximum_execution_timeout_seconds,
                ),
                # Referenced by name (Ref), so CloudFormation creates the alarms before the endpoint.
                auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                    alarms=[
                        sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name)
                        for alarm in (self.errors_alarm, self.latency_alarm)
                    ]
                ),
            ),
            # Keep the live instance count (autoscaling may have raised it); take the new capture settings.
            retain_all_variant_properties=True if props.updating else None,
            exclude_retained_variant_properties=(
                [sagemaker.CfnEndpoint.VariantPropertyProperty(variant_property_type="DataCaptureConfig")]
                if props.updating
                else None
            ),
        )

        autoscaling = stage.autoscaling
        # L1 on purpose: the L2 ScalableTarget creates an IAM role; without one, Application Auto Scaling
        # uses its service-linked role, and the endpoint stack stays free of IAM.
        self.scalable_target = appscaling.CfnScalableTarget(
            self,
            "ScalableTarget",
            service_namespace="sagemaker",
            resource_id=f"endpoint/{props.endpoint_name}/variant/{props.variant_name}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=autoscaling.min_instances,
            max_capacity=autoscaling.max_instances,
        )
        # The resource id names the endpoint as text; register only once the endpoint (update) is done.
        self.scalable_target.node.add_dependency(self.endpoint)
        self.scaling_policy = appscaling.CfnScalingPolicy(
            self,
            "InvocationsPerInstanceScaling",
            policy_name=f"{props.endpoint_name}-invocations-per-instance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scalable_target.ref,
            target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(autoscaling.target_invocations_per_instance),
                predefined_metric_specification=appscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                ),
                scale_in_cooldown=autoscaling.scale_in_cooldown_seconds,
                scale_out_cooldown=autoscaling.scale_out_cooldown_seconds,
            ),
        )

    # --- Metrics, as the CDK's L2 constructs offer them (``metric_invocations()`` and so on).
    def metric(
        self, metric_name: str, *, statistic: str = "Sum", period: Duration | None = None
    ) -> cloudwatch.Metric:
        """A metric of this endpoint's variant in the ``AWS/SageMaker`` namespace."""
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": self.variant_name},
            statistic=statistic,
            period=period or Duration.minutes(1),
        )

    def metric_invocation_5xx_errors(self, *, period: Duration | None = None) -> cloudwatch.Metric:
        """Answers with a 5xx status (the model server failed), summed."""
        return self.metric("Invocation5XXErrors", period=period)

    def metric_model_latency(self, *, period: Duration | None = None) -> cloudwatch.Metric:
        """How long the container took to answer, in microseconds, averaged."""
        return self.metric("ModelLatency", statistic="Average", period=period)

    def metric_invocations_per_instance(self, *, period: Duration | None = None) -> cloudwatch.Metric:
        """What target tracking scales on."""
        return self.metric("InvocationsPerInstance", period=period)


@dataclass(frozen=True)
class EndpointExecutionRoleProps:
    role_name: str
    endpoint_name: str
    storage: ProjectStorage
    model_artifacts_prefixes: tuple[str, ...]
    """Where the pipeline writes the models it registers in the artifacts bucket (``storage_layout.served_prefixes``:
    the training jobs' ``model.tar.gz``, the evaluation step's package): the model may read its archive, not the
    splits and reports beside it."""
    data_capture_key: str


class EndpointExecutionRole(Construct):
    """Assumed by SageMaker for one stage's model: read the model and its image, write capture and logs."""

    def __init__(self, scope: Construct, construct_id: str, props: EndpointExecutionRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            role_name=props.role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"The model of endpoint {props.endpoint_name} runs as this role",
        )
        log_group = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{props.endpoint_name}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        storage = props.storage
        (read_models,) = storage.grant_model_read(self.role, props.model_artifacts_prefixes)
        (write_captures,) = storage.grant_capture_write(self.role, props.data_capture_key)
        storage.grant_key_use(self.role)
        grant_pull_framework_images(self.role, stack)
        grant_write_logs(self.role, "EndpointLogs", [log_group, f"{log_group}:*"])
        add_statements(
            self.role,
            # "Ensure that your IAM execution role has permission to perform the cloudwatch:DescribeAlarms
            # action on the auto-rollback alarms you specify"
            # (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html).
            iam.PolicyStatement(
                sid="ReadRollbackAlarms",
                actions=["cloudwatch:DescribeAlarms"],
                resources=rollback_alarm_arns(stack, props.endpoint_name),
            ),
            # AWS requires "*": cloudwatch:PutMetricData has no resource-level permissions; the namespace
            # condition keeps it to SageMaker's endpoint metrics.
            iam.PolicyStatement(
                sid="EndpointMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", NAMESPACE]}},
            ),
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5",
            "Each wildcard is as narrow as the resource allows: the model artifacts under the build pipeline's "
            "prefix (keys named by each execution), this stage's data-capture prefix (SageMaker names the "
            "files), this endpoint's log streams, the framework image repositories; '*' only for "
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData (with a namespace condition).",
            [
                f"Resource::{nag_spelling(self, resource)}"
                for resource in (
                    *read_models.resources,
                    *write_captures.resources,
                    f"{log_group}:*",
                    framework_images(stack),
                    "*",
                )
            ],
        )
