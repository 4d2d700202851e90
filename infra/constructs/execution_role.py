"""The role SageMaker Pipelines and the jobs it starts run as, limited to this project's resources."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge, nag_spelling
from model_build.storage_layout import PipelineStorage, listing

# What a job needs to put an object, multipart uploads included (large model archives are uploaded in parts).
PUT_OBJECT_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
# The suffix wildcards of CDK's grant_encrypt_decrypt on the project key (cdk-nag IAM5 findings).
KMS_GRANT_WILDCARD_ACTIONS = ("kms:GenerateDataKey*", "kms:ReEncrypt*")

# The account that publishes the SageMaker framework images (Deep Learning Containers) in most regions.
DEEP_LEARNING_CONTAINERS_ACCOUNT = "763104351884"


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


@dataclass(frozen=True)
class ExecutionRoleProps:
    role_name: str
    pipeline_name: str
    data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    encryption_key: kms.IKey
    feature_group_arn: str
    model_package_group_arn: str
    model_packages_arn: str
    glue_database_name: str
    athena_workgroup_arn: str
    storage: PipelineStorage
    """Where in the two buckets the jobs read and write (``model_build.storage_layout``)."""


def _sid(name: str) -> str:
    """A statement id from a step name (IAM allows only letters and digits)."""
    return "".join(character for character in name if character.isalnum())


def s3_statements(
    data_bucket: s3.IBucket, artifacts_bucket: s3.IBucket, storage: PipelineStorage
) -> list[iam.PolicyStatement]:
    """Read the data bucket's raw reviews and offline store, read the pipeline's artifacts, and write only
    where each step writes: no statement lets the role write or delete in the data bucket."""
    statements = [
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
            resources=[data_bucket.bucket_arn, artifacts_bucket.bucket_arn],
        ),
    ]
    for step in storage.steps:
        statements.append(
            iam.PolicyStatement(
                sid=f"Write{_sid(step.step)}",
                actions=list(PUT_OBJECT_ACTIONS),
                resources=[
                    artifacts_bucket.arn_for_objects(key) for key in (*step.outputs, *step.checkpoints)
                ],
            )
        )
        if step.checkpoints:
            statements.append(
                iam.PolicyStatement(
                    sid=f"Sync{_sid(step.step)}Checkpoints",
                    actions=["s3:DeleteObject"],
                    resources=[artifacts_bucket.arn_for_objects(key) for key in step.checkpoints],
                )
            )
    statements.append(
        iam.PolicyStatement(
            sid="WriteQueryResults",
            actions=list(PUT_OBJECT_ACTIONS),
            resources=[artifacts_bucket.arn_for_objects(storage.query_results)],
        )
    )
    return statements


class SageMakerExecutionRole(Construct):
    """Assumed by SageMaker for the pipeline and its processing/training jobs; passed on only to SageMaker."""

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
            description="SageMaker pipeline and job role of this project only",
        )
        glue_tables = stack.format_arn(
            service="glue", resource="table", resource_name=f"{props.glue_database_name}/*"
        )
        sagemaker_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        framework_images = stack.format_arn(
            service="ecr", account=DEEP_LEARNING_CONTAINERS_ACCOUNT, resource="repository", resource_name="*"
        )
        statements = [
            iam.PolicyStatement(
                sid="FeatureStoreRecords",
                actions=[
                    "sagemaker:DescribeFeatureGroup",
                    "sagemaker:PutRecord",
                    "sagemaker:GetRecord",
                    "sagemaker:BatchGetRecord",
                ],
                resources=[props.feature_group_arn],
            ),
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
                sid="PassOnlyToSageMaker",
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="QueryCatalog",
                actions=[
                    "athena:StartQueryExecution",
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:StopQueryExecution",
                    "athena:GetWorkGroup",
                ],
                resources=[props.athena_workgroup_arn],
            ),
            iam.PolicyStatement(
                sid="ReadCatalog",
                actions=["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartitions"],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(
                        service="glue", resource="database", resource_name=props.glue_database_name
                    ),
                    glue_tables,
                ],
            ),
            write_logs("JobLogs", [sagemaker_logs]),
            *pull_framework_images(framework_images),
            # AWS requires "*": cloudwatch:PutMetricData has no resource-level permissions; the namespace
            # condition keeps it to SageMaker's own metrics.
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
        ]
        statements += s3_statements(props.data_bucket, props.artifacts_bucket, props.storage)
        for statement in statements:
            self.role.add_to_policy(statement)
        props.encryption_key.grant_encrypt_decrypt(self.role)

        storage = props.storage
        object_keys = dict.fromkeys(
            [
                *((props.data_bucket, key) for key in storage.data_reads),
                *(
                    (props.artifacts_bucket, key)
                    for key in (*storage.artifact_reads, *storage.artifact_writes)
                ),
            ]
        )
        wildcard_resources = [
            *(bucket.arn_for_objects(key) for bucket, key in object_keys),
            props.model_packages_arn,
            *(sagemaker_arn(job, "pipelines-*") for job in ("processing-job", "training-job")),
            sagemaker_arn("experiment-trial", "*"),
            sagemaker_arn("experiment-trial-component", "*"),
            glue_tables,
            sagemaker_logs,
            framework_images,
            "*",
        ]
        acknowledge(
            self.role,
            "AwsSolutions-IAM5",
            "Every wildcard is scoped to this project: objects under the prefixes the pipeline reads and "
            "under each step's own output prefixes (execution ids and job names are known only at run time), "
            "CDK's KMS grant actions (kms:GenerateDataKey*, kms:ReEncrypt*) on its own key, its model package "
            "versions, the jobs SageMaker Pipelines names 'pipelines-*', the trials "
            "of its pipeline's experiment, its Glue database's tables, SageMaker's log groups, the framework "
            "image repositories; '*' only for the two actions AWS grants on no narrower resource "
            "(ecr:GetAuthorizationToken; cloudwatch:PutMetricData, with a namespace condition).",
            [
                *(f"Action::{action}" for action in KMS_GRANT_WILDCARD_ACTIONS),
                *(f"Resource::{nag_spelling(self, resource)}" for resource in wildcard_resources),
            ],
        )
