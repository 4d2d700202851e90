"""The names every part of the template shares, defined once: the bottom of the import graph.

CDK (``infra/``), the SageMaker pipeline (``model_build/``), the local mode (``pipelines/local``) and the tests
all read these values from here, so a bucket, feature group or pipeline is never spelled twice.

Two settings may be overridden per deployment, through the environment or CDK context:
``MLOPS_PROJECT_NAME`` (``project_name``) and ``MLOPS_ENVIRONMENT`` (``environment``). Every other name is
derived from them.

A SageMaker project created from the Service Catalog product (``infra/stacks/project_template_stack.py``) is a
deployment too: Studio's ``SageMakerProjectName`` is the project name and ``SageMakerProjectId`` the environment
(``MLOPS_SAGEMAKER_PROJECT_ID``, :meth:`ProjectConfig.for_sagemaker_project`). In the product's template both
are CloudFormation parameters, so the names are built from CDK tokens, which are checked by the parameters'
``AllowedPattern`` when a project is created rather than here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

DEFAULT_PROJECT_NAME = "review-sentiment"
DEFAULT_ENVIRONMENT = "dev"
DEFAULT_REGION = "us-east-1"

SAGEMAKER_PROJECT_ID_VARIABLE = "MLOPS_SAGEMAKER_PROJECT_ID"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
SAGEMAKER_PROJECT_ID_MAX_LENGTH = 23
SAGEMAKER_PROJECT_ID_PATTERN = re.compile(rf"^p-[a-z0-9]{{1,{SAGEMAKER_PROJECT_ID_MAX_LENGTH - 2}}}$")
"""SageMaker's project ids (``p-`` and 12 lowercase letters and digits today), with room to grow: at most 23
characters, which keeps ``<id>-access-logs-<account>-<region>`` within S3's 63."""
SAGEMAKER_PROJECT_NAME_MAX_LENGTH = 20
SAGEMAKER_PROJECT_NAME_PATTERN = re.compile(rf"^[a-z][a-z0-9]{{2,{SAGEMAKER_PROJECT_NAME_MAX_LENGTH - 1}}}$")
"""Stricter than Studio's (32 characters, hyphens, capitals): with ``-<id>`` and the longest suffix
(``-sagemaker-execution``, an endpoint's model names) a name must fit IAM's and SageMaker's 63-64 characters,
and without hyphens of its own the product's template can spell the Glue names (hyphens as underscores) with
CloudFormation's functions."""
IAM_ROLE_NAME_MAX_LENGTH = 64
S3_BUCKET_NAME_MAX_LENGTH = 63
BUCKET_NAME_SUFFIX_LENGTH = len("-123456789012-ap-southeast-4")
"""What CDK appends to a bucket prefix (``infra/constructs/secure_bucket.py``): ``-<account>-<region>``, with
the longest region name (14 characters)."""
# A CDK string token (``${Token[TOKEN.123]}``): a value known only when CloudFormation deploys the template.
_DEPLOY_TIME_VALUE = re.compile(r"\$\{Token\[[^\]]+\]\}")


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
    sagemaker_project_id: str | None = None
    """Set when this deployment is a SageMaker project: its id, which is then also the ``environment``.
    The buckets are named from the id alone, as project name, id, account and region would not fit S3's limit."""

    def __post_init__(self) -> None:
        for setting in ("project_name", "environment"):
            value = getattr(self, setting)
            if not (_is_deploy_time(value) or NAME_PATTERN.match(value)):
                raise ValueError(
                    f"{setting}={value!r} is not a valid name: use 3-32 lowercase letters, digits and hyphens, "
                    "starting with a letter (it becomes part of S3 bucket and SageMaker resource names)"
                )
        project_id = self.sagemaker_project_id
        if project_id is not None:
            if project_id != self.environment:
                raise ValueError(
                    f"sagemaker_project_id={project_id!r} must also be the environment "
                    f"(environment={self.environment!r}): use ProjectConfig.for_sagemaker_project"
                )
            if not _is_deploy_time(project_id) and not SAGEMAKER_PROJECT_ID_PATTERN.match(project_id):
                raise ValueError(
                    f"sagemaker_project_id={project_id!r} is not a SageMaker project id "
                    f"({SAGEMAKER_PROJECT_ID_PATTERN.pattern})"
                )
            if not _is_deploy_time(self.project_name) and not SAGEMAKER_PROJECT_NAME_PATTERN.match(
                self.project_name
            ):
                raise ValueError(
                    f"project_name={self.project_name!r} cannot name a SageMaker project of this template: use "
                    f"3-{SAGEMAKER_PROJECT_NAME_MAX_LENGTH} lowercase letters and digits, starting with a letter"
                )
        self._check_bucket_names()
        if not self.tags:
            object.__setattr__(self, "tags", {"project": self.project_name, "environment": self.environment})

    def _check_bucket_names(self) -> None:
        """Names that pass each rule alone can still make a bucket name over S3's limit together; say so here,
        with the limit on the pair, rather than deep in the CDK app."""
        if _is_deploy_time(self.bucket_stem):
            return  # the product's parameters' patterns keep these short enough (SAGEMAKER_PROJECT_ID_*)
        longest = max(self.bucket_prefixes, key=len)
        length = len(longest) + BUCKET_NAME_SUFFIX_LENGTH
        if length <= S3_BUCKET_NAME_MAX_LENGTH:
            return
        room = S3_BUCKET_NAME_MAX_LENGTH - BUCKET_NAME_SUFFIX_LENGTH - (len(longest) - len(self.bucket_stem))
        if self.sagemaker_project_id is None:
            used = len(self.project_name) + len(self.environment)
            together = f"project_name and environment together may have {room - 1} characters"
            given = f"project_name={self.project_name!r} and environment={self.environment!r} have {used}"
        else:
            together = f"the project id may have {room} characters"
            given = f"sagemaker_project_id={self.bucket_stem!r} has {len(self.bucket_stem)}"
        raise ValueError(
            f"bucket {longest}-<account>-<region> can reach {length} characters, over S3's "
            f"{S3_BUCKET_NAME_MAX_LENGTH} (account 12, region up to 14): {together}; {given}"
        )

    @classmethod
    def for_sagemaker_project(
        cls, project_name: str, project_id: str, region: str = DEFAULT_REGION
    ) -> ProjectConfig:
        """The config of the SageMaker project ``project_name`` (Studio's ``SageMakerProjectName``) with id
        ``project_id`` (``SageMakerProjectId``): the id is the environment, so two projects never share a name."""
        return cls(
            project_name=project_name, environment=project_id, region=region, sagemaker_project_id=project_id
        )

    @property
    def prefix(self) -> str:
        """The stem of every resource name: ``<project>-<environment>``."""
        return f"{self.project_name}-{self.environment}"

    @property
    def bucket_stem(self) -> str:
        """The stem of the bucket names: the prefix, or a SageMaker project's id alone (unique in the account)."""
        return self.sagemaker_project_id or self.prefix

    def underscored(self, name: str) -> str:
        """``name`` with underscores for hyphens, as Glue and Athena want. (The product template's config
        overrides this for names that hold CloudFormation parameters, which only CloudFormation can edit.)"""
        return name.replace("-", "_")

    # --- S3: bucket names get the account and region appended by CDK, since they must be globally unique.
    @property
    def data_bucket_prefix(self) -> str:
        return f"{self.bucket_stem}-data"

    @property
    def artifacts_bucket_prefix(self) -> str:
        return f"{self.bucket_stem}-artifacts"

    @property
    def access_logs_bucket_prefix(self) -> str:
        return f"{self.bucket_stem}-access-logs"

    @property
    def bucket_prefixes(self) -> tuple[str, ...]:
        """Every bucket's name prefix: data, artifacts, access logs, CI/CD."""
        return (
            self.data_bucket_prefix,
            self.artifacts_bucket_prefix,
            self.access_logs_bucket_prefix,
            self.cicd_bucket_prefix,
        )

    @property
    def cicd_bucket_prefix(self) -> str:
        """CodePipeline's artifact store: CDK gives every CodeBuild action read/write on the whole bucket, so
        it is not the artifacts bucket, where the models the endpoints serve live."""
        return f"{self.bucket_stem}-cicd"

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
        return self.underscored(self.feature_group_name)

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
        return self.underscored(self.prefix)

    @property
    def raw_reviews_table_name(self) -> str:
        return "raw_reviews"

    @property
    def athena_workgroup_name(self) -> str:
        return f"{self.prefix}-athena"

    # --- experiment tracking
    @property
    def mlflow_tracking_server_name(self) -> str:
        """The SageMaker managed MLflow tracking server the stacks create (context ``mlflowTrackingServer=create``)."""
        return f"{self.prefix}-mlflow"

    @property
    def mlflow_artifacts_prefix(self) -> str:
        """Where in the artifacts bucket that server keeps its runs' artifacts (the jobs upload there)."""
        return "mlflow"

    @property
    def mlflow_experiment_name(self) -> str:
        """One experiment per pipeline: each execution is a run of it, on both runners."""
        return self.pipeline_name

    # --- IAM and CI/CD
    @property
    def execution_role_name(self) -> str:
        return f"{self.prefix}-sagemaker-execution"

    def step_role_name(self, step: str) -> str:
        """``<project>-<env>-job-<step>``: the role a job step of the pipeline runs as (``CheckData`` ->
        ``...-job-check-data``), so that each job holds only what its own step needs.

        A name over IAM's 64 characters is an error here, not at deploy time; in the product's template, where
        the prefix is a CloudFormation parameter, the suffix must leave room for the longest name and id.
        """
        name = f"{self.prefix}-job-{_kebab(step)}"
        if _is_deploy_time(name):
            longest_prefix = SAGEMAKER_PROJECT_NAME_MAX_LENGTH + 1 + SAGEMAKER_PROJECT_ID_MAX_LENGTH
            length = longest_prefix + len(name) - len(self.prefix)
        else:
            length = len(name)
        if length > IAM_ROLE_NAME_MAX_LENGTH:
            raise ValueError(
                f"the role of step {step!r} would be named {name!r}, {length} characters, over IAM's "
                f"{IAM_ROLE_NAME_MAX_LENGTH}: shorten the step's name (model_build/pipeline_spec.py) or the "
                "project's"
            )
        return name

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

    # --- The SageMaker project template: published once per account, so named from the project name alone.
    @property
    def project_template_stack_name(self) -> str:
        return f"{self.project_name}-sagemaker-project-template"

    @property
    def project_template_portfolio_name(self) -> str:
        return f"{self.project_name} MLOps templates"

    @property
    def project_template_product_name(self) -> str:
        return f"{self.project_name}-mlops"


def _is_deploy_time(value: str) -> bool:
    return bool(_DEPLOY_TIME_VALUE.search(value))


def _kebab(name: str) -> str:
    """``ProcessReviews`` -> ``process-reviews``: a step's name as IAM and the other names spell words."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def load_config(
    project_name: str | None = None,
    environment: str | None = None,
    region: str | None = None,
) -> ProjectConfig:
    """The config for this process: explicit arguments, then ``MLOPS_*`` / AWS variables, then defaults.

    With ``MLOPS_SAGEMAKER_PROJECT_ID`` set (the product's build projects set it) this is a SageMaker project's.
    """
    project_id = os.environ.get(SAGEMAKER_PROJECT_ID_VARIABLE) or None
    return ProjectConfig(
        project_name=project_name or os.environ.get("MLOPS_PROJECT_NAME") or DEFAULT_PROJECT_NAME,
        environment=project_id or environment or os.environ.get("MLOPS_ENVIRONMENT") or DEFAULT_ENVIRONMENT,
        region=region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION,
        sagemaker_project_id=project_id,
    )
