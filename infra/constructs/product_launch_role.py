"""The role Service Catalog provisions a SageMaker project as: what the product's template creates, and no more.

Service Catalog calls CloudFormation with this role, and CloudFormation creates the product's resources with
it, so the role needs the CloudFormation calls on Service Catalog's stacks (``SC-<account>-pp-...``) and, for
each resource type of the product's template, the calls that create, update, tag and delete one. Those
calls are granted on the names a project's resources get (they all hold ``-p-``, the project id's start, or
begin with it), except where a type has no name to scope by when it is created (KMS keys, CodeBuild projects
CloudFormation names itself). The statements are made from the types the template holds, and a type without an
entry in :data:`LAUNCH_PERMISSIONS` is an error, so the role cannot fall behind the template.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aws_cdk import Arn, ArnFormat, Aws, CfnResource
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.nag import acknowledge, nag_spelling


@dataclass(frozen=True)
class LaunchPermission:
    """What creating, updating and deleting one resource type takes; ``resources`` are ARN templates in which
    ``{partition}``, ``{region}`` and ``{account}`` are filled in."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    unscoped: tuple[str, ...] = ()
    """Actions AWS authorizes on ``"*"`` only (no resource-level permissions), granted on ``"*"``."""
    also: tuple[LaunchPermission, ...] = ()
    """What the type's handlers call on other services' resources."""

    def statements(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """``(actions, resources)`` of each statement this permission takes."""
        own = [(self.actions, self.resources)]
        if self.unscoped:
            own.append((self.unscoped, ("*",)))
        return own + [statement for other in self.also for statement in other.statements()]


_IAM_ROLE = LaunchPermission(
    (
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:UpdateRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:TagRole",
        "iam:UntagRole",
        "iam:ListRoleTags",
        "iam:PutRolePolicy",
        "iam:GetRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "iam:UpdateRoleDescription",
        "iam:PassRole",
    ),
    # Named roles (``<project>-p-<id>-...``) and those CloudFormation names after the stack (``SC-...``).
    ("arn:{partition}:iam::{account}:role/*-p-*", "arn:{partition}:iam::{account}:role/SC-*"),
)
_EVENT_RULE = LaunchPermission(
    (
        "events:PutRule",
        "events:DeleteRule",
        "events:DescribeRule",
        "events:EnableRule",
        "events:DisableRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "events:TagResource",
        "events:UntagResource",
        "events:ListTagsForResource",
        "events:ListTargetsByRule",
    ),
    (
        "arn:{partition}:events:{region}:{account}:rule/*-p-*",
        "arn:{partition}:events:{region}:{account}:rule/SC-*",
    ),
)

# Athena checks a workgroup's result location, and Glue a table's location, by writing to it: both are in the
# project's buckets.
_WRITE_PROJECT_BUCKETS = LaunchPermission(
    (
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucketMultipartUploads",
        "s3:ListMultipartUploadParts",
    ),
    ("arn:{partition}:s3:::p-*", "arn:{partition}:s3:::p-*/*"),
)
_LAMBDA_FUNCTION = ("arn:{partition}:lambda:{region}:{account}:function:*-p-*",)
_SNS_TOPIC = ("arn:{partition}:sns:{region}:{account}:*-p-*",)
_SQS_QUEUE = ("arn:{partition}:sqs:{region}:{account}:*-p-*",)

LAUNCH_PERMISSIONS: dict[str, LaunchPermission] = {
    # The monitoring stack's resources (alarms, topic, retrain function and its queue, logs, dashboard).
    "AWS::CloudWatch::Alarm": LaunchPermission(
        (
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DeleteAlarms",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:TagResource",
            "cloudwatch:UntagResource",
            "cloudwatch:ListTagsForResource",
        ),
        ("arn:{partition}:cloudwatch:{region}:{account}:alarm:*-p-*",),
    ),
    "AWS::CloudWatch::Dashboard": LaunchPermission(
        ("cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards", "cloudwatch:GetDashboard"),
        ("arn:{partition}:cloudwatch::{account}:dashboard/*-p-*",),
    ),
    "AWS::Lambda::Function": LaunchPermission(
        (
            "lambda:CreateFunction",
            "lambda:DeleteFunction",
            "lambda:GetFunction",
            "lambda:GetFunctionConfiguration",
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
            "lambda:PutFunctionConcurrency",
            "lambda:DeleteFunctionConcurrency",
            "lambda:TagResource",
            "lambda:UntagResource",
            "lambda:ListTags",
            # The read handler's calls (CloudFormation's resource schema of AWS::Lambda::Function).
            "lambda:GetFunctionCodeSigningConfig",
            "lambda:GetFunctionRecursionConfig",
            "lambda:GetFunctionScalingConfig",
            "lambda:GetRuntimeManagementConfig",
        ),
        _LAMBDA_FUNCTION,
    ),
    "AWS::Lambda::Permission": LaunchPermission(
        ("lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy"), _LAMBDA_FUNCTION
    ),
    "AWS::Logs::LogGroup": LaunchPermission(
        (
            "logs:CreateLogGroup",
            "logs:DeleteLogGroup",
            "logs:PutRetentionPolicy",
            "logs:DeleteRetentionPolicy",
            "logs:TagResource",
            "logs:UntagResource",
            "logs:ListTagsForResource",
            "logs:AssociateKmsKey",
            "logs:DisassociateKmsKey",
            "logs:GetDataProtectionPolicy",
        ),
        ("arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/*-p-*",),
        unscoped=("logs:DescribeLogGroups", "logs:DescribeIndexPolicies", "logs:DescribeResourcePolicies"),
    ),
    "AWS::SNS::Topic": LaunchPermission(
        (
            "sns:CreateTopic",
            "sns:DeleteTopic",
            "sns:GetTopicAttributes",
            "sns:SetTopicAttributes",
            "sns:TagResource",
            "sns:UntagResource",
            "sns:ListTagsForResource",
            "sns:GetDataProtectionPolicy",
            "sns:ListSubscriptionsByTopic",
        ),
        _SNS_TOPIC,
    ),
    "AWS::SNS::TopicPolicy": LaunchPermission(
        ("sns:SetTopicAttributes", "sns:GetTopicAttributes"), _SNS_TOPIC
    ),
    "AWS::SQS::Queue": LaunchPermission(
        (
            "sqs:CreateQueue",
            "sqs:DeleteQueue",
            "sqs:GetQueueAttributes",
            "sqs:SetQueueAttributes",
            "sqs:TagQueue",
            "sqs:UntagQueue",
            "sqs:ListQueueTags",
            "sqs:GetQueueUrl",
        ),
        _SQS_QUEUE,
    ),
    "AWS::SQS::QueuePolicy": LaunchPermission(
        ("sqs:SetQueueAttributes", "sqs:GetQueueAttributes"), _SQS_QUEUE
    ),
    "AWS::IAM::Role": _IAM_ROLE,
    "AWS::IAM::Policy": _IAM_ROLE,  # CDK's default policies are inline policies of their role
    "AWS::KMS::Key": LaunchPermission(
        (
            "kms:DescribeKey",
            "kms:EnableKeyRotation",
            "kms:GetKeyRotationStatus",
            "kms:GetKeyPolicy",
            "kms:PutKeyPolicy",
            "kms:UpdateKeyDescription",
            "kms:ScheduleKeyDeletion",
            "kms:TagResource",
            "kms:UntagResource",
            "kms:ListResourceTags",
            # SageMaker, S3 and CodeBuild check that the caller may use the key they are given.
            "kms:CreateGrant",
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey",
        ),
        # A key has no name when it is created; its ARN is a random id.
        ("arn:{partition}:kms:{region}:{account}:key/*",),
        # CreateKey involves no key yet: IAM authorizes it on "*" only (Service Authorization Reference).
        unscoped=("kms:CreateKey",),
    ),
    "AWS::KMS::Alias": LaunchPermission(
        ("kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"),
        (
            "arn:{partition}:kms:{region}:{account}:alias/*-p-*",
            "arn:{partition}:kms:{region}:{account}:key/*",
        ),
        unscoped=("kms:ListAliases",),
    ),
    "AWS::S3::Bucket": LaunchPermission(
        (
            "s3:CreateBucket",
            "s3:DeleteBucket",
            "s3:ListBucket",
            "s3:PutBucketVersioning",
            "s3:PutEncryptionConfiguration",
            "s3:PutBucketPublicAccessBlock",
            "s3:PutBucketOwnershipControls",
            "s3:PutBucketLogging",
            "s3:PutLifecycleConfiguration",
            "s3:PutBucketTagging",
            "s3:GetBucketTagging",
            "s3:GetBucketLocation",
            "s3:PutBucketTagging",
            # The read handler reads every setting of a bucket (AWS::S3::Bucket's resource schema).
            "s3:GetBucketAbac",
            "s3:GetBucketAcl",
            "s3:GetBucketCORS",
            "s3:GetBucketLogging",
            "s3:GetBucketMetadataTableConfiguration",
            "s3:GetBucketNotification",
            "s3:GetBucketObjectLockConfiguration",
            "s3:GetBucketOwnershipControls",
            "s3:GetBucketPublicAccessBlock",
            "s3:GetBucketVersioning",
            "s3:GetBucketWebsite",
            "s3:GetAccelerateConfiguration",
            "s3:GetAnalyticsConfiguration",
            "s3:GetEncryptionConfiguration",
            "s3:GetIntelligentTieringConfiguration",
            "s3:GetInventoryConfiguration",
            "s3:GetLifecycleConfiguration",
            "s3:GetMetricsConfiguration",
            "s3:GetReplicationConfiguration",
            "s3:ListTagsForResource",
            "s3:TagResource",
            "s3:UntagResource",
        ),
        ("arn:{partition}:s3:::p-*",),
    ),
    "AWS::S3::BucketPolicy": LaunchPermission(
        ("s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"),
        ("arn:{partition}:s3:::p-*",),
    ),
    "AWS::Glue::Database": LaunchPermission(
        ("glue:CreateDatabase", "glue:UpdateDatabase", "glue:DeleteDatabase", "glue:GetDatabase"),
        (
            "arn:{partition}:glue:{region}:{account}:catalog",
            "arn:{partition}:glue:{region}:{account}:database/*_p_*",
        ),
        unscoped=(
            "lakeformation:DescribeResource",
            "lakeformation:ListResources",
            "lakeformation:DescribeLakeFormationIdentityCenterConfiguration",
        ),
    ),
    "AWS::Glue::Table": LaunchPermission(
        ("glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable", "glue:GetTable"),
        (
            "arn:{partition}:glue:{region}:{account}:catalog",
            "arn:{partition}:glue:{region}:{account}:database/*_p_*",
            "arn:{partition}:glue:{region}:{account}:table/*_p_*/*",
        ),
        unscoped=(
            "lakeformation:DescribeResource",
            "lakeformation:ListResources",
            "lakeformation:DescribeLakeFormationIdentityCenterConfiguration",
        ),
        also=(_WRITE_PROJECT_BUCKETS,),
    ),
    "AWS::Glue::SecurityConfiguration": LaunchPermission(
        (
            "glue:CreateSecurityConfiguration",
            "glue:DeleteSecurityConfiguration",
            "glue:GetSecurityConfiguration",
        ),
        # Security configurations have no ARN; Glue authorizes them on "*" only.
        ("*",),
    ),
    "AWS::Glue::Crawler": LaunchPermission(
        (
            "glue:UpdateCrawler",
            "glue:DeleteCrawler",
            "glue:GetCrawler",
            "glue:StopCrawler",
            "glue:GetTags",
            "glue:TagResource",
            "glue:UntagResource",
        ),
        ("arn:{partition}:glue:{region}:{account}:crawler/*_p_*",),
        unscoped=("glue:CreateCrawler",),
    ),
    "AWS::Athena::WorkGroup": LaunchPermission(
        (
            "athena:CreateWorkGroup",
            "athena:UpdateWorkGroup",
            "athena:DeleteWorkGroup",
            "athena:GetWorkGroup",
            "athena:TagResource",
            "athena:UntagResource",
            "athena:ListTagsForResource",
        ),
        ("arn:{partition}:athena:{region}:{account}:workgroup/*-p-*",),
        also=(_WRITE_PROJECT_BUCKETS,),
    ),
    "AWS::SageMaker::FeatureGroup": LaunchPermission(
        (
            "sagemaker:CreateFeatureGroup",
            "sagemaker:DeleteFeatureGroup",
            "sagemaker:DescribeFeatureGroup",
            "sagemaker:UpdateFeatureGroup",
            "sagemaker:AddTags",
            "sagemaker:DeleteTags",
            "sagemaker:ListTags",
        ),
        ("arn:{partition}:sagemaker:{region}:{account}:feature-group/*-p-*",),
    ),
    "AWS::SageMaker::ModelPackageGroup": LaunchPermission(
        (
            "sagemaker:CreateModelPackageGroup",
            "sagemaker:DeleteModelPackageGroup",
            "sagemaker:DescribeModelPackageGroup",
            "sagemaker:GetModelPackageGroupPolicy",
            "sagemaker:AddTags",
            "sagemaker:DeleteTags",
            "sagemaker:ListTags",
        ),
        ("arn:{partition}:sagemaker:{region}:{account}:model-package-group/*-p-*",),
    ),
    "AWS::CodeCommit::Repository": LaunchPermission(
        (
            "codecommit:CreateRepository",
            "codecommit:DeleteRepository",
            "codecommit:GetRepository",
            "codecommit:UpdateRepositoryDescription",
            "codecommit:TagResource",
            "codecommit:UntagResource",
            "codecommit:ListTagsForResource",
            "codecommit:GetRepositoryTriggers",
            "codecommit:PutRepositoryTriggers",
        ),
        ("arn:{partition}:codecommit:{region}:{account}:*-p-*",),
        unscoped=("codecommit:ListRepositories",),
    ),
    "AWS::CodeBuild::Project": LaunchPermission(
        (
            "codebuild:CreateProject",
            "codebuild:UpdateProject",
            "codebuild:DeleteProject",
            "codebuild:BatchGetProjects",
        ),
        # CloudFormation names the build projects from their logical ids, not after the stack.
        ("arn:{partition}:codebuild:{region}:{account}:project/*",),
    ),
    "AWS::CodePipeline::Pipeline": LaunchPermission(
        (
            "codepipeline:CreatePipeline",
            "codepipeline:UpdatePipeline",
            "codepipeline:DeletePipeline",
            "codepipeline:GetPipeline",
            "codepipeline:GetPipelineState",
            "codepipeline:TagResource",
            "codepipeline:UntagResource",
            "codepipeline:ListTagsForResource",
        ),
        ("arn:{partition}:codepipeline:{region}:{account}:*-p-*",),
    ),
    "AWS::Events::Rule": _EVENT_RULE,
}

_CLOUDFORMATION = LaunchPermission(
    (
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:GetTemplate",
        "cloudformation:SetStackPolicy",
        "cloudformation:CreateChangeSet",
        "cloudformation:DescribeChangeSet",
        "cloudformation:ExecuteChangeSet",
        "cloudformation:DeleteChangeSet",
        "cloudformation:ContinueUpdateRollback",
        # Service Catalog creates the stack with SageMaker's project tags, which CloudFormation then puts on
        # every resource that takes tags (hence each type's tag actions above).
        "cloudformation:TagResource",
        "cloudformation:UntagResource",
    ),
    ("arn:{partition}:cloudformation:{region}:{account}:stack/SC-*",),
)


def resource_types(scope: Construct) -> list[str]:
    """The CloudFormation types of every resource under ``scope``, sorted, each once."""
    return sorted(
        {
            construct.cfn_resource_type
            for construct in scope.node.find_all()
            if isinstance(construct, CfnResource)
        }
    )


@dataclass(frozen=True)
class ProductLaunchRoleProps:
    resource_types: tuple[str, ...]
    """The types of the product template's resources (:func:`resource_types`)."""
    template_bucket_arn: str
    """The bucket the product's template is read from (the CDK assets bucket)."""
    code_connection_arn: str | None = None
    """The GitHub connection the product's pipelines read from (None: a CodeCommit source)."""


class ProductLaunchRole(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ProductLaunchRoleProps) -> None:
        super().__init__(scope, construct_id)
        missing = [cfn_type for cfn_type in props.resource_types if cfn_type not in LAUNCH_PERMISSIONS]
        if missing:
            raise ValueError(
                f"the product template creates {', '.join(missing)}, which the launch role has no permissions "
                "for: add them to LAUNCH_PERMISSIONS in infra/constructs/product_launch_role.py"
            )
        self.role = iam.Role(
            self,
            "Role",
            # Named by CloudFormation: IAM is global, and the template may be published in several regions.
            assumed_by=iam.ServicePrincipal("servicecatalog.amazonaws.com"),
            description="Service Catalog provisions the SageMaker project template's resources as this role",
        )
        permissions = [_CLOUDFORMATION, *_unique(LAUNCH_PERMISSIONS[t] for t in props.resource_types)]
        statements = [
            iam.PolicyStatement(actions=list(actions), resources=_arns(resources))
            for actions, resources in dict.fromkeys(
                statement for permission in permissions for statement in permission.statements()
            )
        ]
        statements.append(
            iam.PolicyStatement(
                actions=["cloudformation:ValidateTemplate", "cloudformation:GetTemplateSummary"],
                resources=["*"],
            )
        )
        statements.append(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{props.template_bucket_arn}/*"])
        )
        if props.code_connection_arn:
            # Creating a pipeline whose Source uses a connection passes it (AWS::CodePipeline::Pipeline's
            # handler permissions); the action's prefix must be the ARN's own
            # (https://docs.aws.amazon.com/dtconsole/latest/userguide/rename.html).
            service = Arn.split(props.code_connection_arn, ArnFormat.SLASH_RESOURCE_NAME).service
            statements.append(
                iam.PolicyStatement(
                    actions=[f"{service}:PassConnection"],
                    resources=[props.code_connection_arn],
                    conditions={"StringEquals": {f"{service}:PassedToService": "codepipeline.amazonaws.com"}},
                )
            )
        policy = iam.Policy(self, "Policy", statements=statements)
        policy.attach_to_role(self.role)
        wildcards = sorted(
            {
                f"Resource::{nag_spelling(self, arn)}"
                for statement in statements
                for arn in statement.resources
                if "*" in arn
            }
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Each resource is scoped to the names a SageMaker project's resources get (every one holds the "
            "project id, '-p-...'), to Service Catalog's stacks (SC-...), or, where a type cannot be named when "
            "it is created (KMS keys, CodeBuild projects, Glue security configurations, template validation), to "
            "the account and region",
            wildcards,
        )


def _unique(permissions: Iterable[LaunchPermission]) -> list[LaunchPermission]:
    seen: list[LaunchPermission] = []
    for permission in permissions:
        if permission not in seen:
            seen.append(permission)
    return seen


def _arns(templates: tuple[str, ...]) -> list[str]:
    return [
        template.format(partition=Aws.PARTITION, region=Aws.REGION, account=Aws.ACCOUNT_ID)
        for template in templates
    ]
