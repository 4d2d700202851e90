"""The roles of the SageMaker pipeline: the execution role the pipeline runs as, and one role per job step.

The pipeline (SageMaker Pipelines itself, and its RegisterModel step) runs as the execution role: it starts the
jobs, records the experiment, registers the model and reads the property files, and it passes each job the
role of its step (``iam:PassRole`` on those roles only, to SageMaker only). Each job runs as its step's role
(:mod:`model_build.step_roles`), which may read the code, the step's inputs and the earlier steps' outputs,
write only under its own prefixes (:mod:`model_build.storage_layout`), write its logs and metrics, pull the
framework images and use the project key; only the step that declares the Feature Store (ProcessReviews) may
put records into the feature group. No job queries Athena or reads the Glue catalog, so no role may.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Aws, CfnMapping, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge, nag_spelling
from model_build.images import FRAMEWORK
from model_build.step_roles import StepRole
from model_build.storage_layout import PipelineStorage, StepWrites, listing

# What a job needs to put an object, multipart uploads included (large model archives are uploaded in parts).
PUT_OBJECT_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
DEEP_LEARNING_CONTAINERS_MAPPING = "DeepLearningContainersAccounts"


def deep_learning_containers_accounts(torch_version: str = FRAMEWORK.torch) -> dict[str, str]:
    """The account that publishes the PyTorch Deep Learning Containers in each region, from the SageMaker SDK's
    own image configuration (what ``image_uris.retrieve`` reads; opt-in regions use accounts of their own).

    The JSON is read where the SDK installs it, without importing the SDK: the CDK app does not need it.
    """
    spec = importlib.util.find_spec("sagemaker.core")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the SageMaker SDK (sagemaker-core) is not installed: pip install -r requirements.txt"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "image_uri_config" / "pytorch.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    accounts: dict[str, str] = {}
    for scope in ("training", "inference"):
        versions = config[scope]["versions"]
        aliases = config[scope].get("version_aliases", {})
        version = (
            versions.get(torch_version)
            or versions[aliases.get(torch_version, torch_version.rsplit(".", 1)[0])]
        )
        for region, account in version["registries"].items():
            if accounts.setdefault(region, account) != account:
                raise RuntimeError(
                    f"the SDK names two DLC accounts for {region}: {accounts[region]}, {account}"
                )
    return accounts


def framework_images(scope: Construct) -> str:
    """The Deep Learning Containers' repositories in the stack's region: the account comes from a mapping of
    :func:`deep_learning_containers_accounts`, added to the stack once."""
    stack = Stack.of(scope)
    mapping = stack.node.try_find_child(DEEP_LEARNING_CONTAINERS_MAPPING)
    if not isinstance(mapping, CfnMapping):
        mapping = CfnMapping(
            stack,
            DEEP_LEARNING_CONTAINERS_MAPPING,
            mapping={
                region: {"account": account}
                for region, account in deep_learning_containers_accounts().items()
            },
        )
    account = mapping.find_in_map(Aws.REGION, "account")
    return stack.format_arn(service="ecr", account=account, resource="repository", resource_name="*")


def pull_framework_images(framework_images: str) -> list[iam.PolicyStatement]:
    """What a job or an endpoint needs to pull the Deep Learning Containers' images (``framework_images``)."""
    return [
        iam.PolicyStatement(
            sid="PullFrameworkImages",
            actions=["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            resources=[framework_images],
        ),
        # AWS requires "*": ecr:GetAuthorizationToken has no resource-level permissions.
        iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
    ]


LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")


def write_logs(sid: str, log_groups: list[str]) -> iam.PolicyStatement:
    """What a SageMaker job or endpoint needs to write its CloudWatch logs into ``log_groups``."""
    return iam.PolicyStatement(sid=sid, actions=list(LOG_ACTIONS), resources=log_groups)


def use_project_key(key: kms.IKey) -> iam.PolicyStatement:
    """Decrypt what is read and encrypt what is written (a data key per object, S3 bucket keys) with ``key``."""
    return iam.PolicyStatement(
        sid="UseProjectKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
    )


def _sid(name: str) -> str:
    """A statement id from a step name (IAM allows only letters and digits)."""
    return "".join(character for character in name if character.isalnum())


def read_statements(
    data_bucket: s3.IBucket, artifacts_bucket: s3.IBucket, storage: PipelineStorage, *, reads_input: bool
) -> list[iam.PolicyStatement]:
    """Read the pipeline's artifacts (code, earlier steps' outputs) and, with ``reads_input``, the raw reviews:
    nothing here lets a role write or delete in either bucket."""
    statements = []
    buckets = [artifacts_bucket]
    if reads_input:
        buckets.insert(0, data_bucket)
        statements += [
            iam.PolicyStatement(
                sid="ListReviewData",
                actions=["s3:ListBucket"],
                resources=[data_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": list(listing(storage.data_prefixes))}},
            ),
            iam.PolicyStatement(
                sid="ReadReviewData",
                actions=["s3:GetObject"],
                resources=[data_bucket.arn_for_objects(key) for key in storage.data_reads],
            ),
        ]
    statements += [
        iam.PolicyStatement(
            sid="ListPipelineArtifacts",
            actions=["s3:ListBucket"],
            resources=[artifacts_bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": list(listing(storage.artifact_prefixes))}},
        ),
        iam.PolicyStatement(
            sid="ReadPipelineArtifacts",
            actions=["s3:GetObject"],
            resources=[artifacts_bucket.arn_for_objects(key) for key in storage.artifact_reads],
        ),
        iam.PolicyStatement(
            sid="LocateBuckets",
            actions=["s3:GetBucketLocation"],
            resources=[bucket.bucket_arn for bucket in buckets],
        ),
    ]
    return statements


def write_statements(artifacts_bucket: s3.IBucket, writes: StepWrites) -> list[iam.PolicyStatement]:
    """Create objects only under the step's own prefixes; delete only in its checkpoint folder (training)."""
    statements = [
        iam.PolicyStatement(
            sid=f"Write{_sid(writes.step)}",
            actions=list(PUT_OBJECT_ACTIONS),
            resources=[
                artifacts_bucket.arn_for_objects(key) for key in (*writes.outputs, *writes.checkpoints)
            ],
        )
    ]
    if writes.checkpoints:
        statements.append(
            iam.PolicyStatement(
                sid=f"Sync{_sid(writes.step)}Checkpoints",
                actions=["s3:DeleteObject"],
                resources=[artifacts_bucket.arn_for_objects(key) for key in writes.checkpoints],
            )
        )
    return statements


def acknowledge_wildcards(role: iam.Role, statements: list[iam.PolicyStatement], reason: str) -> None:
    """Acknowledge IAM5 for exactly the wildcard resources of ``statements``, each spelled as cdk-nag does."""
    wildcards = dict.fromkeys(
        nag_spelling(role, resource)
        for statement in statements
        for resource in statement.resources
        if "*" in resource
    )
    acknowledge(role, "AwsSolutions-IAM5", reason, [f"Resource::{resource}" for resource in wildcards])


@dataclass(frozen=True)
class StepRoleProps:
    step: StepRole
    data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    encryption_key: kms.IKey
    feature_group_arn: str
    storage: PipelineStorage
    """Where in the two buckets the jobs read (``model_build.storage_layout``); the step's writes are its own."""
    experiment_tracking: tuple[iam.PolicyStatement, ...] = ()
    """What logging to the project's MLflow tracking server takes
    (:meth:`infra.constructs.experiment_tracking.ExperimentTracking.log_run_statements`): held by the role
    of a step that declares experiment tracking; empty when the project has no server."""


class SageMakerStepRole(Construct):
    """The role the jobs of one step run as: assumed by SageMaker, passed on by the execution role only."""

    def __init__(self, scope: Construct, construct_id: str, props: StepRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        step = props.step
        self.role = iam.Role(
            self,
            "Role",
            role_name=step.role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"The {step.step} jobs of this project's SageMaker pipeline",
        )
        sagemaker_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        statements = [
            *read_statements(
                props.data_bucket, props.artifacts_bucket, props.storage, reads_input=step.reads_input
            ),
            *write_statements(props.artifacts_bucket, step.writes),
            write_logs("JobLogs", [sagemaker_logs]),
            *pull_framework_images(framework_images(stack)),
            # AWS requires "*": cloudwatch:PutMetricData has no resource-level permissions; the namespace
            # condition keeps it to SageMaker's own metrics.
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
            use_project_key(props.encryption_key),
        ]
        if step.puts_features:
            # preprocess.py's FeatureStoreIngestor: PutRecord only (kms:Decrypt on the online store's key is
            # in UseProjectKey).
            statements.append(
                iam.PolicyStatement(
                    sid="PutFeatureRecords",
                    actions=["sagemaker:PutRecord"],
                    resources=[props.feature_group_arn],
                )
            )
        if step.logs_experiments:
            statements += props.experiment_tracking
        for statement in statements:
            self.role.add_to_policy(statement)
        acknowledge_wildcards(
            self.role,
            statements,
            f"Every wildcard is scoped to this project: objects under the prefixes the {step.step} jobs read "
            "and under the step's own output prefixes and the MLflow artifact store's (execution ids, job names, "
            "experiment and run ids are known only at run time), SageMaker's log groups, the framework image repositories; '*' only for the two actions "
            "AWS grants on no narrower resource (ecr:GetAuthorizationToken; cloudwatch:PutMetricData, with a "
            "namespace condition).",
        )


@dataclass(frozen=True)
class ExecutionRoleProps:
    role_name: str
    pipeline_name: str
    artifacts_bucket: s3.IBucket
    encryption_key: kms.IKey
    model_package_group_arn: str
    model_packages_arn: str
    step_roles: tuple[iam.IRole, ...]
    """The roles the pipeline's jobs run as: the only roles it may pass."""
    storage: PipelineStorage
    """Where in the artifacts bucket the pipeline reads its property files and reports."""


class SageMakerExecutionRole(Construct):
    """Assumed by SageMaker Pipelines for the pipeline and its RegisterModel step; it passes each job its
    step's role, and writes nothing in S3 itself."""

    def __init__(self, scope: Construct, construct_id: str, props: ExecutionRoleProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        def sagemaker_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        self.role = iam.Role(
            self,
            "Role",
            role_name=props.role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker pipeline role of this project only; its jobs run as their steps' roles",
        )
        statements = [
            iam.PolicyStatement(
                sid="RegisterModels",
                actions=[
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:UpdateModelPackage",
                    "sagemaker:AddTags",
                ],
                resources=[props.model_package_group_arn, props.model_packages_arn],
            ),
            # SageMaker Pipelines names the jobs of its steps "pipelines-<execution id>-<step>-<suffix>".
            iam.PolicyStatement(
                sid="PipelineStepJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[
                    sagemaker_arn("processing-job", "pipelines-*"),
                    sagemaker_arn("training-job", "pipelines-*"),
                ],
            ),
            # Pipelines records each execution as a trial of an experiment named after the pipeline.
            iam.PolicyStatement(
                sid="PipelineExperiments",
                actions=[
                    "sagemaker:CreateExperiment",
                    "sagemaker:DescribeExperiment",
                    "sagemaker:CreateTrial",
                    "sagemaker:DescribeTrial",
                    "sagemaker:CreateTrialComponent",
                    "sagemaker:DescribeTrialComponent",
                    "sagemaker:AssociateTrialComponent",
                    "sagemaker:AddTags",
                ],
                resources=[
                    sagemaker_arn("experiment", props.pipeline_name),
                    sagemaker_arn("experiment-trial", "*"),
                    sagemaker_arn("experiment-trial-component", "*"),
                ],
            ),
            iam.PolicyStatement(
                sid="PassStepRolesToSageMaker",
                actions=["iam:PassRole"],
                resources=[role.role_arn for role in props.step_roles],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            # The property files (data check, evaluation) that conditions and registration read.
            iam.PolicyStatement(
                sid="ListPipelineArtifacts",
                actions=["s3:ListBucket"],
                resources=[props.artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": list(listing(props.storage.artifact_prefixes))}},
            ),
            iam.PolicyStatement(
                sid="ReadPipelineArtifacts",
                actions=["s3:GetObject"],
                resources=[
                    props.artifacts_bucket.arn_for_objects(key) for key in props.storage.artifact_reads
                ],
            ),
            iam.PolicyStatement(
                sid="LocateBuckets",
                actions=["s3:GetBucketLocation"],
                resources=[props.artifacts_bucket.bucket_arn],
            ),
            # The registered model names its inference image.
            *pull_framework_images(framework_images(stack)),
            use_project_key(props.encryption_key),
        ]
        for statement in statements:
            self.role.add_to_policy(statement)
        acknowledge_wildcards(
            self.role,
            statements,
            "Every wildcard is scoped to this project: objects under the pipeline's artifact prefix (execution "
            "ids and job names are known only at run time), its model package versions, the jobs SageMaker "
            "Pipelines names 'pipelines-*', the trials of its pipeline's experiment, the framework image "
            "repositories; '*' only for ecr:GetAuthorizationToken, which AWS grants on no narrower resource.",
        )
