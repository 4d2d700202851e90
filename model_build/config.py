"""The names every part of the template shares, defined once: the bottom of the import graph.

CDK (``infra/``), the SageMaker pipeline (``model_build/``), the local mode (``pipelines/local``) and the tests
all read these values from here, so a bucket, feature group or pipeline is never spelled twice.

Two settings may be overridden per deployment, through the environment or CDK context:
``MLOPS_PROJECT_NAME`` (``project_name``) and ``MLOPS_ENVIRONMENT`` (``environment``). Every other name is
derived from them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

DEFAULT_PROJECT_NAME = "review-sentiment"
DEFAULT_ENVIRONMENT = "dev"
DEFAULT_REGION = "us-east-1"

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")


@dataclass(frozen=True)
class ProjectConfig:
    """Every shared name of one deployment of the template.

    Names are lowercase with hyphens because S3 bucket names allow nothing else, and the same stem is reused
    for SageMaker, Glue and Athena resources (Glue/Athena names get underscores, which they require).
    """

    project_name: str = DEFAULT_PROJECT_NAME
    environment: str = DEFAULT_ENVIRONMENT
    region: str = DEFAULT_REGION
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for setting in ("project_name", "environment"):
            value = getattr(self, setting)
            if not _NAME_PATTERN.match(value):
                raise ValueError(
                    f"{setting}={value!r} is not a valid name: use 3-32 lowercase letters, digits and hyphens, "
                    "starting with a letter (it becomes part of S3 bucket and SageMaker resource names)"
                )
        if not self.tags:
            object.__setattr__(self, "tags", {"project": self.project_name, "environment": self.environment})

    @property
    def prefix(self) -> str:
        """The stem of every resource name: ``<project>-<environment>``."""
        return f"{self.project_name}-{self.environment}"

    # --- S3: bucket names get the account and region appended by CDK, since they must be globally unique.
    @property
    def data_bucket_prefix(self) -> str:
        return f"{self.prefix}-data"

    @property
    def artifacts_bucket_prefix(self) -> str:
        return f"{self.prefix}-artifacts"

    @property
    def access_logs_bucket_prefix(self) -> str:
        return f"{self.prefix}-access-logs"

    @property
    def cicd_bucket_prefix(self) -> str:
        """CodePipeline's artifact store: CDK gives every CodeBuild action read/write on the whole bucket, so
        it is not the artifacts bucket, where the models the endpoints serve live."""
        return f"{self.prefix}-cicd"

    raw_reviews_prefix: str = "reviews/raw"
    """Where raw review CSVs land in the data bucket; the Glue crawler and the pipeline's input read it."""

    feature_store_prefix: str = "feature-store"
    """Where the Feature Store's offline store writes Parquet in the data bucket."""

    pipeline_artifacts_prefix: str = "pipelines"
    """Where pipeline steps write their outputs in the artifacts bucket."""

    athena_results_prefix: str = "athena-results"

    data_capture_prefix: str = "data-capture"
    """Where endpoints capture requests and responses in the data bucket: ``<prefix>/<stage>/<endpoint>/...``."""

    # --- SageMaker
    @property
    def feature_group_name(self) -> str:
        return f"{self.prefix}-reviews"

    @property
    def feature_group_table_name(self) -> str:
        """The offline store's Glue table: the group's name with underscores, which Athena needs."""
        return self.feature_group_name.replace("-", "_")

    @property
    def model_package_group_name(self) -> str:
        return f"{self.prefix}-models"

    @property
    def pipeline_name(self) -> str:
        return f"{self.prefix}-build"

    @property
    def staging_endpoint_name(self) -> str:
        return f"{self.prefix}-staging"

    @property
    def production_endpoint_name(self) -> str:
        return f"{self.prefix}-prod"

    def endpoint_name(self, stage: str) -> str:
        """``<project>-<env>-<stage>``: the endpoint of a rollout stage (``staging``, ``prod``)."""
        return f"{self.prefix}-{stage}"

    def data_capture_key(self, stage: str) -> str:
        """The data bucket's key prefix for a stage's capture files (SageMaker adds endpoint/variant/date)."""
        return f"{self.data_capture_prefix}/{stage}"

    # --- Glue and Athena: underscores, since Athena cannot query hyphenated database names without quoting.
    @property
    def glue_database_name(self) -> str:
        return self.prefix.replace("-", "_")

    @property
    def raw_reviews_table_name(self) -> str:
        return "raw_reviews"

    @property
    def athena_workgroup_name(self) -> str:
        return f"{self.prefix}-athena"

    # --- IAM and CI/CD
    @property
    def execution_role_name(self) -> str:
        return f"{self.prefix}-sagemaker-execution"

    @property
    def build_pipeline_name(self) -> str:
        return f"{self.prefix}-model-build"

    @property
    def deploy_pipeline_name(self) -> str:
        return f"{self.prefix}-model-deploy"

    @property
    def approval_rule_name(self) -> str:
        """The EventBridge rule that starts the deploy pipeline when a model version is approved."""
        return f"{self.prefix}-model-approved"


def load_config(
    project_name: str | None = None,
    environment: str | None = None,
    region: str | None = None,
) -> ProjectConfig:
    """The config for this process: explicit arguments, then ``MLOPS_*`` / AWS variables, then defaults."""
    return ProjectConfig(
        project_name=project_name or os.environ.get("MLOPS_PROJECT_NAME") or DEFAULT_PROJECT_NAME,
        environment=environment or os.environ.get("MLOPS_ENVIRONMENT") or DEFAULT_ENVIRONMENT,
        region=region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION,
    )
