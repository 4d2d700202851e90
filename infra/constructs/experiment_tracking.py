"""The project's SageMaker managed MLflow tracking server: created here, or one that already exists.

Each pipeline execution is an MLflow run (``model_build/steps/tracking.py``). With context
``mlflowTrackingServer=create`` the stack creates ``AWS::SageMaker::MlflowTrackingServer`` named by the config
(``mlflow_tracking_server_name``), its artifact store under ``mlflow/`` in the project's KMS-encrypted artifacts
bucket, with a role of its own that may use that prefix and the key and nothing else. With an ARN it uses that
server. Without the setting nothing is created and the jobs log nothing on AWS.

The server owns its grants (:meth:`ExperimentTracking.log_run_statements`): what a job that logs to the execution's
run calls, and nothing more (the Service Authorization Reference for SageMaker with MLflow,
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemakerwithmlflow.html, names
each action's resource type ``mlflow-tracking-server``):

- ``GetRun``: MLflow's client reads the run before writing its artifacts (where they go) and a trial reads
  its parent; ``LogBatch``: every parameter, metric and tag (the client sends them in batches);
- ``CreateRun`` / ``UpdateRun``: a tuning trial's child run, and ending it;
- ``s3:PutObject`` under the artifact store's prefix: MLflow's S3 artifact repository writes the files itself,
  with the job's credentials (sagemaker-mlflow uploads through the server only when told to).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.constructs.grants import acknowledge_wildcards, add_statements
from infra.constructs.project_storage import ProjectStorage

CREATE = "create"
"""The setting's value that asks the stack to create the server."""
TRACKING_SERVER_SIZE = "Small"
"""Up to 25 users (SageMaker's sizes: Small, Medium, Large); a project's pipelines and a team fit."""
LOG_RUN_ACTIONS = (
    "sagemaker-mlflow:GetRun",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:UpdateRun",
)
START_RUN_ACTIONS = (
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:LogBatch",
)
"""What ``pipelines run --sagemaker`` (or the build project) calls to create an execution's run."""


def tracking_server_arn(scope: Construct, setting: str | None, server_name: str) -> str:
    """The server's ARN from any stack of the app: the one named by the setting, or the one the registry stack
    creates (``mlflow-tracking-server/<name>`` in the stack's account and region); empty without a server."""
    if not setting:
        return ""
    if setting != CREATE:
        return setting
    return Stack.of(scope).format_arn(
        service="sagemaker", resource="mlflow-tracking-server", resource_name=server_name
    )


@dataclass(frozen=True)
class ExperimentTrackingProps:
    setting: str
    """:data:`CREATE`, or the ARN of an existing tracking server."""
    tracking_server_name: str
    storage: ProjectStorage
    """The artifact store's bucket (the project's artifacts bucket) and the key it is encrypted with."""
    artifacts_prefix: str


class ExperimentTracking(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ExperimentTrackingProps) -> None:
        super().__init__(scope, construct_id)
        self.artifacts_bucket, self.artifacts_prefix = (
            props.storage.artifacts_bucket,
            props.artifacts_prefix.strip("/"),
        )
        if props.setting != CREATE:
            self.tracking_server_arn = props.setting
            return
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="The project's MLflow tracking server: its artifact store in the artifacts bucket",
        )
        statements = add_statements(
            role,
            iam.PolicyStatement(
                sid="ArtifactStoreObjects",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[self.artifacts_bucket.arn_for_objects(f"{self.artifacts_prefix}/*")],
            ),
            iam.PolicyStatement(
                sid="ArtifactStoreListing",
                actions=["s3:ListBucket"],
                resources=[self.artifacts_bucket.bucket_arn],
                conditions={
                    "StringLike": {"s3:prefix": [self.artifacts_prefix, f"{self.artifacts_prefix}/*"]}
                },
            ),
            iam.PolicyStatement(
                sid="ArtifactStoreLocation",
                actions=["s3:GetBucketLocation"],
                resources=[self.artifacts_bucket.bucket_arn],
            ),
        )
        statements += props.storage.grant_key_use(role)
        acknowledge_wildcards(
            role,
            statements,
            "The tracking server's artifacts are objects under its own prefix of the artifacts bucket, named by "
            "experiment and run ids known only at run time.",
        )
        server = sagemaker.CfnMlflowTrackingServer(
            self,
            "Server",
            tracking_server_name=props.tracking_server_name,
            artifact_store_uri=self.artifacts_bucket.s3_url_for_object(self.artifacts_prefix),
            role_arn=role.role_arn,
            tracking_server_size=TRACKING_SERVER_SIZE,
            automatic_model_registration=False,  # versions are registered by the pipeline's RegisterModel
        )
        server.node.add_dependency(role)
        self.tracking_server_arn = server.attr_tracking_server_arn

    def grant_log_runs(self, grantee: iam.IGrantable) -> list[iam.PolicyStatement]:
        """What a job needs to log into its execution's run (and a trial's child run) and write its files."""
        return add_statements(
            grantee,
            iam.PolicyStatement(
                sid="LogExperimentRuns", actions=list(LOG_RUN_ACTIONS), resources=[self.tracking_server_arn]
            ),
            iam.PolicyStatement(
                sid="WriteExperimentArtifacts",
                actions=["s3:PutObject"],
                resources=[self.artifacts_bucket.arn_for_objects(f"{self.artifacts_prefix}/*")],
            ),
        )


def grant_start_runs(grantee: iam.IGrantable, tracking_server_arn: str) -> list[iam.PolicyStatement]:
    """What the build project needs to create an execution's run on the server and close it after the wait."""
    return add_statements(
        grantee,
        iam.PolicyStatement(
            sid="StartExperimentRuns",
            actions=[*START_RUN_ACTIONS, "sagemaker-mlflow:UpdateRun"],
            resources=[tracking_server_arn],
        ),
    )
