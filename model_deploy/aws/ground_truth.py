"""Ground Truth: label a file of unlabeled reviews with the same workteam, labels and export as the review queue.

``python -m model_deploy label start --input s3://.../unlabeled.jsonl ...`` reads the input (JSON Lines, one
object per review with its text in ``source``: Ground Truth's input manifest), refuses it whole when a line
cannot be read (naming the line and what to do: nothing is sent half), writes the checked manifest, the worker
task template and the label categories under ``<output>/<job>/config/`` (KMS-encrypted: the labeling role
reads only under the output prefix), and starts a single-label text classification job
(:func:`labeling_job_request`). ``label collect --job NAME`` turns the completed job's output manifest into one
CSV of the pipeline's input under the raw-reviews prefix (``human-labels/ground-truth-<job>.csv``: the local
export's columns, ``Label Source`` naming the job and the line), so the next build pipeline run trains on them.

AWS documents what this relies on:

- CreateLabelingJob for a built-in task type, the label category file and the worker template:
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-create-labeling-job-api.html,
  https://docs.aws.amazon.com/sagemaker/latest/dg/sms-text-classification.html (input manifest: ``source``).
- The output manifest (``<label attribute>`` and ``<label attribute>-metadata`` with ``class-name``, or
  ``failure-reason`` for an object no worker labeled): https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html
- The pre-annotation and consolidation functions of text classification (``PRE-TextMultiClass``,
  ``ACS-TextMultiClass``) per region: read from botocore's own model of ``HumanTaskConfig`` (the API reference's
  lists), not typed here (:func:`builtin_lambda_arn`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from model_deploy.aws.human_review import TASK_DESCRIPTION, TASK_TITLE, task_template
from model_deploy.stage_config import MAX_LABELS_PER_ITEM
from pipelines.local.review_queue import EXPORT_COLUMNS, LABELS, ReviewError, labeled_row

LABEL_ATTRIBUTE = "sentiment"
"""The output manifest's key of each object's label (its metadata is ``sentiment-metadata``)."""
GROUND_TRUTH_ANSWER = "crowd-classifier"
"""The ``crowd-classifier``'s ``name`` in Ground Truth's built-in text classification template."""
TEMPLATE = task_template(GROUND_TRUTH_ANSWER, "{{ task.input.labels | to_json | escape }}")
"""The worker template: the A2I one's text and instructions; the categories come from the label file."""
LABEL_CATEGORIES: dict[str, Any] = {
    "document-version": "2018-11-28",
    "labels": [{"label": label} for label in LABELS],
}
TASK_TIME_LIMIT_SECONDS = 600
TASK_AVAILABILITY_SECONDS = 10 * 24 * 3600
"""Ten days, Ground Truth's most for a private workforce (the API's ``TaskAvailabilityLifetimeInSeconds``)."""
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def builtin_lambda_arn(member: str, function: str, region: str) -> str:
    """The ARN of one of Ground Truth's own functions in ``region``, as the API reference lists it in
    botocore's model of ``HumanTaskConfig.<member>`` (``PreHumanTaskLambdaArn``, or
    ``AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn``). A region without one is refused."""
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("HumanTaskConfig")
    for name in member.split("."):
        shape = shape.members[name]
    found = re.findall(
        rf"arn:aws:lambda:{re.escape(region)}:\d{{12}}:function:{re.escape(function)}\b", shape.documentation
    )
    if not found:
        raise ReviewError(
            f"Ground Truth has no {function} function in {region} (botocore's CreateLabelingJob reference lists "
            "none): run the labeling job in a region that has one (AWS_DEFAULT_REGION)"
        )
    return str(found[0])


@dataclass(frozen=True)
class LabelingJobProps:
    job_name: str
    manifest_uri: str
    output_uri: str
    workteam_arn: str
    role_arn: str
    kms_key_arn: str
    region: str
    workers_per_review: int = 1

    @property
    def config_uri(self) -> str:
        """``<output>/<job>/config``: the checked manifest, the template and the label file."""
        return f"{self.output_uri.rstrip('/')}/{self.job_name}/config"


def labeling_job_request(props: LabelingJobProps) -> dict[str, Any]:
    """``CreateLabelingJob`` for a single-label text classification of the reviews, majority-consolidated by
    Ground Truth's own function (as ``labels_per_item`` is locally), output encrypted with the project key."""
    if not _JOB_NAME.fullmatch(props.job_name):
        raise ReviewError(
            f"labeling job name {props.job_name!r}: use letters, digits and single hyphens, at most 63 "
            "characters (--job-name)"
        )
    if not 1 <= props.workers_per_review <= MAX_LABELS_PER_ITEM:
        raise ReviewError(f"--workers-per-review {props.workers_per_review}: use 1 to {MAX_LABELS_PER_ITEM}")
    return {
        "LabelingJobName": props.job_name,
        "LabelAttributeName": LABEL_ATTRIBUTE,
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": props.manifest_uri}},
            "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation"]},
        },
        "OutputConfig": {"S3OutputPath": props.output_uri, "KmsKeyId": props.kms_key_arn},
        "RoleArn": props.role_arn,
        "LabelCategoryConfigS3Uri": f"{props.config_uri}/labels.json",
        "HumanTaskConfig": {
            "WorkteamArn": props.workteam_arn,
            "UiConfig": {"UiTemplateS3Uri": f"{props.config_uri}/template.liquid"},
            "PreHumanTaskLambdaArn": builtin_lambda_arn(
                "PreHumanTaskLambdaArn", "PRE-TextMultiClass", props.region
            ),
            "TaskKeywords": ["sentiment", "text classification", "reviews"],
            "TaskTitle": TASK_TITLE,
            "TaskDescription": TASK_DESCRIPTION,
            "NumberOfHumanWorkersPerDataObject": props.workers_per_review,
            "TaskTimeLimitInSeconds": TASK_TIME_LIMIT_SECONDS,
            "TaskAvailabilityLifetimeInSeconds": TASK_AVAILABILITY_SECONDS,
            "AnnotationConsolidationConfig": {
                "AnnotationConsolidationLambdaArn": builtin_lambda_arn(
                    "AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn",
                    "ACS-TextMultiClass",
                    props.region,
                )
            },
        },
        "Tags": [{"Key": "purpose", "Value": "review-labels"}],
    }


def checked_manifest(body: bytes, where: str) -> list[dict[str, Any]]:
    """The input's lines as manifest objects; every unreadable line is named (all of them, not the first),
    and then the whole input is refused: a labeling job over part of a file would lose the rest silently."""
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ReviewError(f"{where}: byte {error.start} is not UTF-8; save the file as UTF-8") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not JSON ({error.msg})")
            continue
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("source"), str)
            or not value["source"].strip()
        ):
            problems.append(f'line {number}: no review text in "source"')
            continue
        objects.append(value)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ReviewError(
            f"{where}: {len(problems)} lines cannot be labeled ({shown}). Each line must be a JSON object "
            'with the review text in "source", e.g. {"source": "Runs small."}; nothing was started'
        )
    if not objects:
        raise ReviewError(f'{where}: no reviews (one JSON object per line, the text in "source")')
    return objects


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ReviewError(f"{uri!r} is not an s3:// location")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _put(s3: Any, uri: str, body: bytes, kms_key_arn: str, content_type: str) -> None:
    bucket, key = _split(uri)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=content_type,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key_arn,
    )


def start_labeling_job(sagemaker: Any, s3: Any, input_uri: str, props: LabelingJobProps) -> tuple[str, int]:
    """Check the input, write the job's config files and start it; returns the job's ARN and the reviews sent."""
    request = labeling_job_request(props)  # refuses a bad name or region before anything is written
    bucket, key = _split(input_uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    objects = checked_manifest(body, input_uri)
    manifest = "".join(json.dumps({"source": o["source"]}, ensure_ascii=False) + "\n" for o in objects)
    _put(s3, props.manifest_uri, manifest.encode("utf-8"), props.kms_key_arn, "application/jsonlines")
    _put(
        s3,
        request["LabelCategoryConfigS3Uri"],
        json.dumps(LABEL_CATEGORIES).encode(),
        props.kms_key_arn,
        "application/json",
    )
    _put(
        s3,
        request["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"],
        TEMPLATE.encode(),
        props.kms_key_arn,
        "text/html",
    )
    return str(sagemaker.create_labeling_job(**request)["LabelingJobArn"]), len(objects)


@dataclass
class Collected:
    rows: list[dict[str, str]]
    unlabeled: list[str]
    """Objects the job returned without a label (``failure-reason``: expired, no worker), named by line."""


def rows_from_manifest(job_name: str, body: bytes) -> Collected:
    """The output manifest's labeled objects as rows of the pipeline's input (``Label Source``:
    ``ground-truth:<job>:line-<n>``); an object without a label is listed, a label that is not one of ours is
    refused (the job was not made by this module)."""
    collected = Collected([], [])
    for number, line in enumerate(body.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        value = json.loads(line)
        metadata = value.get(f"{LABEL_ATTRIBUTE}-metadata") or {}
        label = metadata.get("class-name")
        if label is None:
            reason = metadata.get("failure-reason", "no label")
            collected.unlabeled.append(f"line {number}: {reason}")
            continue
        if label not in LABELS:
            raise ReviewError(
                f"labeling job {job_name}, output line {number}: label {label!r} is not one of {', '.join(LABELS)}"
            )
        source = f"ground-truth:{job_name}:line-{number}"
        collected.rows.append(labeled_row(f"{job_name}-{number}", str(value["source"]), label, None, source))
    return collected


def collect_labeling_job(
    sagemaker: Any, s3: Any, job_name: str, raw_reviews_uri: str, kms_key_arn: str
) -> tuple[str, Collected]:
    """A completed job's output manifest -> ``<raw reviews>/human-labels/ground-truth-<job>.csv`` (rewritten by
    a second collection, never doubled). A job that has not completed is refused, with its status."""
    job = sagemaker.describe_labeling_job(LabelingJobName=job_name)
    status = job["LabelingJobStatus"]
    if status != "Completed":
        why = f": {job['FailureReason']}" if job.get("FailureReason") else ""
        raise ReviewError(
            f"labeling job {job_name} is {status}{why}; collect it once it has Completed "
            "(aws sagemaker describe-labeling-job --labeling-job-name ...)"
        )
    bucket, key = _split(job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    collected = rows_from_manifest(job_name, s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(collected.rows)
    target = f"{raw_reviews_uri.rstrip('/')}/human-labels/ground-truth-{job_name}.csv"
    _put(s3, target, handle.getvalue().encode("utf-8"), kms_key_arn, "text/csv")
    return target, collected


# ------------------------------------------------------------------------------------------------- the CLI
def add_parser(commands: argparse._SubParsersAction) -> None:
    """``python -m model_deploy label start|collect`` on the deploy CLI's subparsers."""
    label = commands.add_parser("label", help="label unlabeled reviews with Ground Truth; collect the labels")
    actions = label.add_subparsers(dest="label_command", required=True)
    start = actions.add_parser("start", help="start a text classification labeling job")
    start.add_argument("--input", required=True, help='s3://.../unlabeled.jsonl: one {"source": text} a line')
    start.add_argument("--output", required=True, help="s3:// prefix the job writes under (the role's)")
    start.add_argument("--workteam-arn", required=True, help="the private workteam (the platform's)")
    start.add_argument("--role-arn", required=True, help="the human review role (monitoring stack output)")
    start.add_argument("--kms-key-arn", required=True)
    start.add_argument("--job-name", help="default: reviews-<UTC time>")
    start.add_argument("--workers-per-review", type=int, default=1)
    collect = actions.add_parser("collect", help="a completed job's labels -> the raw-reviews prefix")
    collect.add_argument("--job-name", required=True)
    collect.add_argument(
        "--raw-reviews", required=True, help="s3:// raw-reviews prefix (the pipeline's input)"
    )
    collect.add_argument("--kms-key-arn", required=True)
    label.set_defaults(run=command)


def command(args: argparse.Namespace, clients: Any) -> int:
    """Bad input (an unreadable line, a job that has not completed) raises :class:`ReviewError`, a
    ``ValueError``: the CLI prints it and exits 2, having started or written nothing."""
    sagemaker, s3 = clients("sagemaker"), clients("s3")
    if args.label_command == "start":
        job_name = args.job_name or f"reviews-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        props = LabelingJobProps(
            job_name=job_name,
            manifest_uri=f"{args.output.rstrip('/')}/{job_name}/config/input.manifest",
            output_uri=args.output.rstrip("/"),
            workteam_arn=args.workteam_arn,
            role_arn=args.role_arn,
            kms_key_arn=args.kms_key_arn,
            region=sagemaker.meta.region_name,
            workers_per_review=args.workers_per_review,
        )
        arn, count = start_labeling_job(sagemaker, s3, args.input, props)
        print(f"started {arn}: {count} reviews, {props.workers_per_review} worker(s) each")
        print(
            f"collect it once it has completed: python -m model_deploy label collect --job-name {job_name} ..."
        )
        return 0
    target, collected = collect_labeling_job(sagemaker, s3, args.job_name, args.raw_reviews, args.kms_key_arn)
    print(f"{len(collected.rows)} labeled reviews written to {target}")
    for problem in collected.unlabeled:
        print(f"  not labeled: {problem}")
    return 0
