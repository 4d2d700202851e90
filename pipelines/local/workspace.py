"""The run folder: where the local mode keeps what SageMaker would keep in S3 and in its own services.

Layout (``.mlops/`` by default)::

    s3/<bucket>/<key>            what would be S3 objects: step outputs, the Feature Store's offline store
    executions/<id>/             one pipeline execution: execution.json, logs/<step>.log, work/<step>/
    cache/<step>/<key>.json      which earlier execution's outputs a cached step reuses
    registry.db                  the Model Registry (SQLite)
    mlflow/                      MLflow's tracking store (mlflow.db) and artifacts: one run per execution
    events/                      every EventBridge-shaped event the registry emitted

Bucket names follow the CDK app (``<prefix>-<account>-<region>``) with the placeholder account
``000000000000``, so an ``s3://`` URI printed locally has the shape it has on AWS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from model_build.config import ProjectConfig, load_config
from model_build.storage_layout import step_output_path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_ACCOUNT = "000000000000"
"""The account id in local ARNs and bucket names: the placeholder AWS uses in its own examples."""

RUN_DIR_ENV = "MLOPS_RUN_DIR"
DEFAULT_RUN_DIR = REPO_ROOT / ".mlops"


def default_run_dir() -> Path:
    """``$MLOPS_RUN_DIR`` if set, else ``.mlops/`` in the repository (what ``make clean`` removes)."""
    return Path(os.environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR)


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"{uri!r} is not an S3 URI (s3://bucket/key)")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{uri!r} has no bucket name")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Workspace:
    """One run folder and the project names in it."""

    root: Path
    config: ProjectConfig

    @classmethod
    def open(cls, root: Path | None = None, config: ProjectConfig | None = None) -> Workspace:
        return cls(Path(root or default_run_dir()).resolve(), config or load_config())

    # --- S3
    @property
    def s3_root(self) -> Path:
        return self.root / "s3"

    def bucket(self, prefix: str) -> str:
        return f"{prefix}-{LOCAL_ACCOUNT}-{self.config.region}"

    @property
    def data_bucket(self) -> str:
        return self.bucket(self.config.data_bucket_prefix)

    @property
    def artifacts_bucket(self) -> str:
        return self.bucket(self.config.artifacts_bucket_prefix)

    def local_path(self, uri: str | S3Uri) -> Path:
        """``s3://bucket/key`` -> ``<run dir>/s3/bucket/key``."""
        parsed = S3Uri.parse(uri) if isinstance(uri, str) else uri
        path = (self.s3_root / parsed.bucket / parsed.key).resolve()
        if not path.is_relative_to(self.s3_root):
            raise ValueError(f"{uri} points outside the local S3 folder {self.s3_root}")
        return path

    def s3_uri(self, path: Path) -> str:
        """The inverse of :meth:`local_path`, for a path inside the local S3 folder."""
        relative = Path(path).resolve().relative_to(self.s3_root)
        bucket, *key = relative.parts
        return str(S3Uri(bucket, "/".join(key)))

    @property
    def raw_reviews_uri(self) -> str:
        """What an empty ``InputDataUrl`` means, here as on AWS: the data bucket's raw-reviews prefix."""
        return f"s3://{self.data_bucket}/{self.config.raw_reviews_prefix}/"

    def step_output_uri(self, execution_id: str, step: str, output: str) -> str:
        """Where a step's output goes, as SageMaker lays out pipeline outputs in the artifacts bucket."""
        return f"s3://{self.artifacts_bucket}/{'/'.join(step_output_path(self.config, execution_id, step, output))}"

    # --- the local services
    @property
    def offline_store_root(self) -> Path:
        """Where the Feature Store writes Parquet, in the offline store's layout on S3."""
        return self.local_path(
            f"s3://{self.data_bucket}/{self.config.feature_store_prefix}/{LOCAL_ACCOUNT}/sagemaker/"
            f"{self.config.region}/offline-store/{self.config.feature_group_name}/data"
        )

    @property
    def executions_dir(self) -> Path:
        return self.root / "executions"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def mlflow_dir(self) -> Path:
        """MLflow's embedded tracking store (``mlflow.db``, SQLite) and its artifacts (``artifacts/``)."""
        return self.root / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts_uri(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def registry_path(self) -> Path:
        return self.root / "registry.db"

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def endpoints_dir(self) -> Path:
        """The local endpoints' state (what each serves, its history) and the running server's address."""
        return self.root / "endpoints"

    def data_capture_root(self, stage: str) -> Path:
        """A stage's capture destination, as its endpoint config names it on AWS."""
        return self.local_path(f"s3://{self.data_bucket}/{self.config.data_capture_key(stage)}")
