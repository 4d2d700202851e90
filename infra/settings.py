"""Deployment settings read from CDK context (``cdk.json`` or ``cdk synth -c key=value``).

Names of resources never live here: they come from :mod:`model_build.config`. These settings only choose how a
deployment behaves (what to keep on ``cdk destroy``, where the source code comes from, when to retrain).
Every value is parsed once, with an error that names the context key and what it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

SourceType = Literal["github", "codecommit"]
SOURCE_TYPES: tuple[SourceType, ...] = ("github", "codecommit")

_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/.+$"
)
# EventBridge schedule expressions: rate(<N> <unit>), singular unit for 1 only, or cron(...) with six fields.
_RATE = re.compile(r"^rate\((?P<value>\d+) (?P<unit>minutes?|hours?|days?)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
_CRON_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_CRON_NAMES = re.compile(r"JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT", re.I)
_CRON_FIELD = re.compile(r"^[0-9*?,/#LW-]*$")
MAX_NONCURRENT_VERSION_RETENTION_DAYS = 36_500
"""S3 documents no upper limit for ``NoncurrentDays`` beyond a positive integer; 100 years bounds typos (an
extra digit or two) while allowing any retention a deployment could mean."""
_TRACKING_SERVER_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-tracking-server/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$"
)
"""SageMaker's ``TrackingServerArn`` (API_DescribeMlflowTrackingServer: ``mlflow-tracking-server/<name>``)."""
MLFLOW_CREATE = "create"
_GITHUB_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_BRANCH = re.compile(r"^[^\s~^:?*\[\\]+$")


class SettingsError(ValueError):
    """A CDK context value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class InfraSettings:
    """How one deployment behaves. Defaults make ``cdk synth`` work with no context at all."""

    project_name: str | None = None
    """Overrides ``MLOPS_PROJECT_NAME`` / the config default when set (context ``projectName``)."""
    environment: str | None = None
    """Overrides ``MLOPS_ENVIRONMENT`` / the config default when set (context ``environment``)."""
    retain_data: bool = True
    """Keep the KMS key, buckets, model registry (and online store) on ``cdk destroy``."""
    online_store: bool = False
    """Also create the Feature Store online store (billed per request and storage)."""
    source_type: SourceType = "codecommit"
    code_connection_arn: str | None = None
    repository_owner: str | None = None
    repository_name: str | None = None
    """Defaults to the project name when not given."""
    branch: str = "main"
    retrain_schedule: str | None = None
    """An EventBridge schedule expression that also starts the build pipeline, or None for pushes only."""
    noncurrent_version_retention_days: int = 90
    human_review_workteam_arn: str | None = None
    """The private workteam (SageMaker Ground Truth / A2I) whose people review unsure answers and label data;
    None: no human review on AWS (the local review queue needs none)."""
    mlflow_tracking_server: str | None = None
    """Where the jobs log their runs on AWS: ``create`` (the stacks create the project's SageMaker managed MLflow
    tracking server), the ARN of an existing one, or None (no tracking on AWS)."""

    def __post_init__(self) -> None:
        if self.source_type not in SOURCE_TYPES:
            raise SettingsError(
                f"context sourceType={self.source_type!r}: use one of {', '.join(SOURCE_TYPES)}"
            )
        # The ARN's format first: a malformed ARN is the mistake to report, not a missing owner.
        if self.code_connection_arn and not _CONNECTION_ARN.match(self.code_connection_arn):
            raise SettingsError(
                f"context codeConnectionArn={self.code_connection_arn!r} is not a CodeConnections ARN "
                "(arn:aws:codeconnections:<region>:<account>:connection/<id>)"
            )
        if self.source_type == "github":
            if not self.code_connection_arn:
                raise SettingsError(
                    "context sourceType='github' needs codeConnectionArn: create a GitHub connection in the "
                    "console (Developer Tools > Settings > Connections), then pass "
                    "-c codeConnectionArn=arn:aws:codeconnections:<region>:<account>:connection/<id>"
                )
            if not self.repository_owner:
                raise SettingsError(
                    "context sourceType='github' needs repositoryOwner (the GitHub user or org)"
                )
        for key, value in (
            ("repositoryOwner", self.repository_owner),
            ("repositoryName", self.repository_name),
        ):
            if value is not None and not _GITHUB_NAME.match(value):
                raise SettingsError(f"context {key}={value!r}: use letters, digits, '.', '_' and '-' only")
        if not _BRANCH.match(self.branch):
            raise SettingsError(f"context branch={self.branch!r} is not a valid git branch name")
        if self.retrain_schedule is not None:
            problem = _schedule_problem(self.retrain_schedule)
            if problem:
                raise SettingsError(
                    f"context retrainSchedule={self.retrain_schedule!r}: {problem}; use an EventBridge "
                    "schedule expression such as 'rate(1 day)', 'rate(7 days)' or 'cron(0 3 ? * MON *)', "
                    "or leave it empty for no schedule"
                )
        if self.human_review_workteam_arn is not None:
            pattern = _workteam_arn_pattern()
            if not re.fullmatch(pattern, self.human_review_workteam_arn):
                raise SettingsError(
                    f"context humanReviewWorkteamArn={self.human_review_workteam_arn!r} is not a workteam ARN "
                    f"(SageMaker's pattern {pattern}): create a private workteam (SageMaker console > Ground "
                    "Truth > Labeling workforces > Private) and pass its ARN"
                )
        server = self.mlflow_tracking_server
        if server is not None and server != MLFLOW_CREATE and not _TRACKING_SERVER_ARN.match(server):
            raise SettingsError(
                f"context mlflowTrackingServer={server!r}: use 'create' (the stacks create the project's "
                "SageMaker managed MLflow tracking server) or the ARN of an existing one "
                "(arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>), or leave it out"
            )
        days = self.noncurrent_version_retention_days
        if not 1 <= days <= MAX_NONCURRENT_VERSION_RETENTION_DAYS:
            raise SettingsError(
                f"context noncurrentVersionRetentionDays={days}: use a number of days from 1 to "
                f"{MAX_NONCURRENT_VERSION_RETENTION_DAYS} (100 years)"
            )

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | Callable[[str], Any]) -> InfraSettings:
        """Parse the settings from a mapping, or from ``node.try_get_context``.

        Values given with ``-c key=value`` on the command line always arrive as strings, so booleans and
        integers accept their string spellings too.
        """
        get = context if callable(context) else context.get
        connection_arn = _optional_str(get, "codeConnectionArn")
        source_type = _optional_str(get, "sourceType")
        if source_type is None:
            # GitHub is the recommended source, but it cannot work without a connection; CodeCommit needs
            # none, which keeps `cdk synth` with no context working (CI), while a connection ARN alone picks
            # GitHub.
            source_type = "github" if connection_arn else "codecommit"
        return cls(
            project_name=_optional_str(get, "projectName"),
            environment=_optional_str(get, "environment"),
            retain_data=_bool(get, "retainData", default=True),
            online_store=_bool(get, "onlineStore", default=False),
            source_type=source_type,  # type: ignore[arg-type]  # checked in __post_init__
            code_connection_arn=connection_arn,
            repository_owner=_optional_str(get, "repositoryOwner"),
            repository_name=_optional_str(get, "repositoryName"),
            branch=_optional_str(get, "branch") or "main",
            retrain_schedule=_optional_str(get, "retrainSchedule"),
            noncurrent_version_retention_days=_int(get, "noncurrentVersionRetentionDays", default=90),
            human_review_workteam_arn=_optional_str(get, "humanReviewWorkteamArn"),
            mlflow_tracking_server=_optional_str(get, "mlflowTrackingServer"),
        )


def _workteam_arn_pattern() -> str:
    """What SageMaker accepts as a workteam ARN: botocore's model of ``CreateFlowDefinition``."""
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("HumanLoopConfig")
    return str(shape.members["WorkteamArn"].metadata["pattern"])


def _schedule_problem(expression: str) -> str | None:
    """Why EventBridge would refuse ``expression``, or None: checked here, as CloudFormation's error at synth
    time names no setting."""
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate["value"]), rate["unit"]
        if value < 1:
            return "a rate must be at least 1"
        if value == 1 and unit.endswith("s"):
            return f"a rate of 1 takes the singular unit ({unit[:-1]})"
        if value > 1 and not unit.endswith("s"):
            return f"a rate of {value} takes the plural unit ({unit}s)"
        return None
    cron = _CRON.match(expression)
    if cron:
        fields = cron["fields"].split()
        if len(fields) != len(_CRON_FIELDS):
            return f"cron(...) takes {len(_CRON_FIELDS)} fields ({' '.join(_CRON_FIELDS)}), not {len(fields)}"
        for name, field in zip(_CRON_FIELDS, fields, strict=True):
            if not _CRON_FIELD.match(_CRON_NAMES.sub("", field)):
                return (
                    f"cron field {name}={field!r} is not a cron value "
                    "(digits, names like MON or JAN, and * ? , - / L W #)"
                )
        if "?" not in (fields[2], fields[4]):
            return "cron(...) needs '?' in day-of-month or day-of-week (EventBridge cannot take both)"
        return None
    return "not rate(<value> <unit>) with a unit of minute(s), hour(s) or day(s), nor cron(<six fields>)"


def _optional_str(get: Callable[[str], Any], key: str) -> str | None:
    value = get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError(f"context {key}={value!r}: expected a string")
    return value.strip() or None


def _bool(get: Callable[[str], Any], key: str, *, default: bool) -> bool:
    value = get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise SettingsError(f"context {key}={value!r}: expected true or false")


def _int(get: Callable[[str], Any], key: str, *, default: int) -> int:
    value = get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        raise SettingsError(f"context {key}={value!r}: expected a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"context {key}={value!r}: expected a whole number") from None
