"""What watches the deployed model: roles of the drift monitor, alarms, notification, retraining, dashboard.

The monitoring job (``model_build/steps/monitor.py``, started by the schedule in the rendered endpoint stack,
``infra/constructs/drift_monitor.py``) publishes its statistics in :func:`monitor_metric_namespace` with the
dimension ``EndpointName``. Here, for each stage whose file has a ``monitoring.schedule_expression``:

- the ``Drift`` alarm, in ALARM after ``drift_alarm_periods`` drifting windows in a row (persistent drift, not
  one odd hour); a ``DataQualityIssue`` alarm; and a "silent monitor" alarm when the endpoint took requests and
  no run reported for three windows (a broken job must not look like a calm endpoint; with no traffic, or
  before the first deploy, there is nothing to monitor, and the alarm stays OK). All notify one KMS-encrypted SNS topic;
- with ``retraining: on_persistent_drift``: an EventBridge rule on the drift alarm's change to ALARM that
  invokes a small function, which starts the build pipeline unless an execution started within
  ``retrain_cooldown_hours`` (``infra/functions/retrain_on_drift.py``), and says so on the topic.

The alarm fires once per episode of drift (CloudWatch sends a state change, not a reminder), so a drift that
persists past the cool-down while the alarm stays in ALARM starts no second retraining: the new model's
rollout, or an operator, ends the episode.

The dashboard shows, per stage, the endpoint's invocations, errors and latency; the drift statistics; the
alarms; and the SageMaker pipeline's executions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.endpoint import NAMESPACE as ENDPOINT_NAMESPACE
from infra.constructs.framework_images import framework_images, grant_pull_framework_images
from infra.constructs.grants import add_statements, grant_pass_role, grant_write_logs
from infra.constructs.project_storage import ProjectStorage
from infra.nag import acknowledge, nag_spelling
from model_build.config import ProjectConfig
from model_deploy.aws.names import (
    VARIANT_NAME,
    drift_alarm_name,
    monitor_job_prefix,
    monitor_job_role_name,
    monitor_metric_namespace,
    monitor_output_key,
    monitor_scheduler_role_name,
)
from model_deploy.stage_config import StageConfig

RETRAIN_FUNCTION_SOURCE = Path(__file__).resolve().parents[1] / "functions" / "retrain_on_drift.py"
PIPELINE_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
DRIFT_STATISTICS = (
    "ReviewLengthPSI",
    "ReviewLengthJS",
    "PredictedClassPSI",
    "PredictedClassJS",
    "TruncatedShareIncrease",
    "UnseenTokenShareIncrease",
    "ConfidenceDrop",
)
"""The statistics ``monitor.py`` publishes (its ``METRIC_NAMES``) that the dashboard draws."""


@dataclass(frozen=True)
class ModelMonitoringProps:
    config: ProjectConfig
    stages: dict[str, StageConfig]
    storage: ProjectStorage
    build_pipeline_arn: str
    build_pipeline_name: str


class ModelMonitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ModelMonitoringProps) -> None:
        super().__init__(scope, construct_id)
        config = props.config
        self.namespace = monitor_metric_namespace(config)
        monitored = {s: c for s, c in props.stages.items() if c.monitoring.schedule_expression is not None}

        # --- notification: a topic with its own rotating key, which CloudWatch and the function may use
        self.topic_key = kms.Key(
            self,
            "TopicKey",
            alias=f"alias/{config.prefix}-model-monitoring",
            description=f"Encrypts the model monitoring notifications of {config.prefix}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # In a key policy "*" means this key.
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=f"{config.prefix}-model-monitoring",
            display_name=f"{config.prefix} model monitoring",
            master_key=self.topic_key,
            enforce_ssl=True,
        )

        self.job_role = self._job_role(props)
        self.scheduler_role = self._scheduler_role(props, monitored)

        # --- alarms and retraining, per monitored stage
        self.alarms: dict[str, dict[str, cloudwatch.Alarm]] = {}
        self.retraining: dict[str, lambda_.Function] = {}
        for stage, stage_config in monitored.items():
            endpoint = config.endpoint_name(stage)
            monitoring = stage_config.monitoring
            period = Duration.hours(monitoring.window_hours)
            alarms = {
                "drift": cloudwatch.Alarm(
                    self,
                    f"{stage.title()}DriftAlarm",
                    alarm_name=drift_alarm_name(endpoint),
                    alarm_description=f"{endpoint}: drift in {monitoring.drift_alarm_periods} monitoring windows "
                    f"in a row (see the reports under s3://.../{monitor_output_key(endpoint)}/)",
                    metric=self.metric("Drift", endpoint, period=period),
                    threshold=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=monitoring.drift_alarm_periods,
                    datapoints_to_alarm=monitoring.drift_alarm_periods,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                ),
                "data_quality": cloudwatch.Alarm(
                    self,
                    f"{stage.title()}DataQualityAlarm",
                    alarm_name=f"{endpoint}-data-quality",
                    alarm_description=f"{endpoint}: requests the model cannot read (empty, not UTF-8, "
                    "unreadable capture lines) above the stage's limits",
                    metric=self.metric("DataQualityIssue", endpoint, period=period),
                    threshold=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                ),
                # Silent: the endpoint took requests in a window, and no monitoring run reported on it, three
                # windows in a row. Missing data is "not breaching", so the alarm is OK from the day of
                # `cdk deploy`, before any endpoint or monitor exists, and while the endpoint takes no traffic.
                "silent": cloudwatch.Alarm(
                    self,
                    f"{stage.title()}MonitorSilentAlarm",
                    alarm_name=f"{endpoint}-drift-monitor-silent",
                    alarm_description=f"{endpoint}: took requests, and no monitoring run reported for 3 windows; "
                    "see the processing jobs named " + monitor_job_prefix(endpoint) + "*",
                    metric=cloudwatch.MathExpression(
                        expression="IF(FILL(invocations, 0) > 0 AND FILL(runs, 0) == 0, 1, 0)",
                        using_metrics={
                            "invocations": cloudwatch.Metric(
                                namespace=ENDPOINT_NAMESPACE,
                                metric_name="Invocations",
                                dimensions_map={"EndpointName": endpoint, "VariantName": VARIANT_NAME},
                                statistic="Sum",
                                period=period,
                            ),
                            "runs": self.metric("Requests", endpoint, statistic="SampleCount", period=period),
                        },
                        label="windows with traffic and no monitoring run",
                        period=period,
                    ),
                    threshold=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=3,
                    datapoints_to_alarm=3,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                ),
            }
            for alarm in alarms.values():
                alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            alarms["drift"].add_ok_action(cw_actions.SnsAction(self.topic))
            self.alarms[stage] = alarms
            if monitoring.retraining == "on_persistent_drift":
                self.retraining[stage] = self._retraining(props, stage, stage_config, alarms["drift"])

        self.dashboard = self._dashboard(props, monitored)

    # --- metrics
    def metric(
        self, name: str, endpoint: str, *, statistic: str = "Maximum", period: Duration | None = None
    ) -> cloudwatch.Metric:
        """A statistic the monitoring job publishes for ``endpoint``."""
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=name,
            dimensions_map={"EndpointName": endpoint},
            statistic=statistic,
            period=period or Duration.hours(1),
        )

    # --- roles
    def _job_role(self, props: ModelMonitoringProps) -> iam.Role:
        """What the monitoring job reads and writes: baselines, captures, its reports, metrics, logs."""
        config = props.config
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "JobRole",
            role_name=monitor_job_role_name(config),
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="The drift monitor's processing jobs run as this role",
        )
        log_group = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/ProcessingJobs",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        data = props.storage.grant_drift_monitor_data(
            role,
            baselines_prefix=config.pipeline_artifacts_prefix,
            captures_prefix=config.data_capture_prefix,
            reports_prefix="monitoring",
        )
        props.storage.grant_key_use(role)
        grant_pull_framework_images(role, stack)
        grant_write_logs(role, "JobLogs", [log_group, f"{log_group}:*"])
        add_statements(
            role,
            # AWS requires "*": cloudwatch:PutMetricData has no resource-level permissions.
            iam.PolicyStatement(
                sid="PublishDriftMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": self.namespace}},
            ),
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Each wildcard is as narrow as the resource allows: baselines under the build pipeline's prefix "
            "(keys named by each execution), captures under the capture prefix (SageMaker names the files), "
            "reports under monitoring/ (named by each job), the processing jobs' log streams, the framework "
            "images; '*' only for ecr:GetAuthorizationToken and cloudwatch:PutMetricData (namespace condition).",
            [
                f"Resource::{nag_spelling(self, resource)}"
                for resource in (
                    *(r for statement in data for r in statement.resources if r.endswith("*")),
                    f"{log_group}:*",
                    framework_images(stack),
                    "*",
                )
            ],
        )
        return role

    def _scheduler_role(self, props: ModelMonitoringProps, monitored: dict[str, StageConfig]) -> iam.Role:
        """What EventBridge Scheduler may do: start the monitoring jobs, as the job role."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "SchedulerRole",
            role_name=monitor_scheduler_role_name(props.config),
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="EventBridge Scheduler starts the drift monitor's processing jobs as this role",
        )
        jobs = [
            stack.format_arn(
                service="sagemaker",
                resource="processing-job",
                resource_name=f"{monitor_job_prefix(props.config.endpoint_name(stage))}*",
            )
            for stage in monitored
        ]
        if jobs:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="StartMonitoringJobs",
                    actions=["sagemaker:CreateProcessingJob", "sagemaker:AddTags"],
                    resources=jobs,
                )
            )
        # The jobs' volumes and outputs are encrypted with the project key: SageMaker creates a grant on it
        # for the job, with the caller's permission.
        props.storage.grant_key_to_aws_resources(role, actions=("kms:CreateGrant", "kms:DescribeKey"))
        grant_pass_role(role, [self.job_role.role_arn], service="sagemaker.amazonaws.com", sid="PassJobRole")
        if jobs:
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Monitoring jobs are named <endpoint>-m-<scheduler execution id>: the id is known only "
                "when the schedule fires.",
                [f"Resource::{nag_spelling(self, job)}" for job in jobs],
            )
        return role

    # --- retraining
    def _retraining(
        self, props: ModelMonitoringProps, stage: str, stage_config: StageConfig, alarm: cloudwatch.Alarm
    ) -> lambda_.Function:
        name = f"{props.config.prefix}-{stage}-retrain-on-drift"
        log_group = logs.LogGroup(
            self,
            f"{stage.title()}RetrainLogs",
            log_group_name=f"/aws/lambda/{name}",
            encryption_key=props.storage.key,  # its policy lets this account's CloudWatch Logs use it
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            f"{stage.title()}RetrainRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Starts {props.build_pipeline_name} when {alarm.alarm_name} fires, once per cool-down",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="StartBuildPipeline",
                actions=["codepipeline:ListPipelineExecutions", "codepipeline:StartPipelineExecution"],
                resources=[props.build_pipeline_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="Logs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        self.topic.grant_publish(role)
        props.storage.key.grant_decrypt(role)  # its environment variables are encrypted with the key
        # EventBridge invokes the function asynchronously: an event it still cannot handle after Lambda's own
        # retries is kept here, encrypted with the topic's key, instead of being dropped.
        dead_letters = sqs.Queue(
            self,
            f"{stage.title()}RetrainDeadLetters",
            queue_name=f"{name}-dead-letters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.topic_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        function = lambda_.Function(
            self,
            f"{stage.title()}RetrainOnDrift",
            function_name=name,
            description=f"Starts {props.build_pipeline_name} on persistent drift of {props.config.endpoint_name(stage)}",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline(RETRAIN_FUNCTION_SOURCE.read_text(encoding="utf-8")),
            timeout=Duration.seconds(30),
            # No reserved concurrency: a new account's quota (10 or 50 concurrent executions) refuses any
            # reservation that leaves fewer than 100 unreserved. Two alarm events at once may both pass the
            # cool-down check; the build pipeline runs in SUPERSEDED mode (CodePipeline's default), so the second
            # start replaces the first.
            dead_letter_queue=dead_letters,
            environment_encryption=props.storage.key,
            role=role,
            log_group=log_group,
            environment={
                "PIPELINE_NAME": props.build_pipeline_name,
                "COOLDOWN_HOURS": str(stage_config.monitoring.retrain_cooldown_hours),
                "TOPIC_ARN": self.topic.topic_arn,
            },
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "The log group's streams are named by Lambda; the topic key's GenerateDataKey* is how SNS grants spell it.",
            [f"Resource::{nag_spelling(self, log_group.log_group_arn)}", "Action::kms:GenerateDataKey*"],
        )
        events.Rule(
            self,
            f"{stage.title()}DriftAlarmRule",
            rule_name=f"{props.config.prefix}-{stage}-drift-alarm",
            description=f"{alarm.alarm_name} went into ALARM: retrain (at most once per cool-down)",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[alarm.alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
            targets=[targets.LambdaFunction(function, retry_attempts=2)],
        )
        return function

    # --- dashboard
    def _dashboard(
        self, props: ModelMonitoringProps, monitored: dict[str, StageConfig]
    ) -> cloudwatch.Dashboard:
        config = props.config
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{config.prefix}-model",
            default_interval=Duration.days(7),
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {config.prefix}: the deployed model\nEndpoints per stage, drift statistics of the "
                "monitored ones (value above its limit in the stage file: drift), alarms, and the build "
                "pipeline's executions.",
                width=24,
                height=2,
            )
        )
        for stage in props.stages:
            endpoint = config.endpoint_name(stage)

            def endpoint_metric(
                name: str, statistic: str = "Sum", endpoint: str = endpoint
            ) -> cloudwatch.Metric:
                return cloudwatch.Metric(
                    namespace=ENDPOINT_NAMESPACE,
                    metric_name=name,
                    dimensions_map={"EndpointName": endpoint, "VariantName": VARIANT_NAME},
                    statistic=statistic,
                    period=Duration.minutes(5),
                )

            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{stage}: invocations and errors",
                    left=[endpoint_metric("Invocations")],
                    right=[endpoint_metric("Invocation4XXErrors"), endpoint_metric("Invocation5XXErrors")],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title=f"{stage}: model latency (microseconds)",
                    left=[endpoint_metric("ModelLatency", "Average"), endpoint_metric("ModelLatency", "p99")],
                    width=12,
                ),
            )
        for stage in monitored:
            endpoint = config.endpoint_name(stage)
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{stage}: drift statistics per monitoring window",
                    left=[self.metric(name, endpoint) for name in DRIFT_STATISTICS],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title=f"{stage}: monitored traffic",
                    left=[
                        self.metric("Requests", endpoint, statistic="Sum"),
                        self.metric("Reviews", endpoint, statistic="Sum"),
                    ],
                    right=[self.metric("MalformedLines", endpoint, statistic="Sum")],
                    width=6,
                ),
                cloudwatch.SingleValueWidget(
                    title=f"{stage}: last verdict (1 = yes)",
                    metrics=[
                        self.metric(name, endpoint) for name in ("Drift", "DataQualityIssue", "NoTraffic")
                    ],
                    width=6,
                ),
            )
        all_alarms = [alarm for alarms in self.alarms.values() for alarm in alarms.values()]
        if all_alarms:
            dashboard.add_widgets(
                cloudwatch.AlarmStatusWidget(title="Monitoring alarms", alarms=all_alarms, width=8)
            )

        def pipeline_metric(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=PIPELINE_NAMESPACE,
                metric_name=name,
                dimensions_map={"PipelineName": config.pipeline_name},
                statistic="Sum",
                period=Duration.hours(1),
            )

        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{config.pipeline_name}: executions",
                left=[
                    pipeline_metric(n)
                    for n in ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped")
                ],
                width=16,
            )
        )
        return dashboard
