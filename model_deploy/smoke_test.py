"""The smoke test a stage must pass before it takes traffic (local) or before the pipeline goes on (AWS).

It really invokes the endpoint, through boto3's ``sagemaker-runtime`` client, as application code would: the
AWS deploy pipeline points it at the staging endpoint, the local rollout at the candidate version on the local
endpoint server (``endpoint_url=http://127.0.0.1:PORT``, the variant named by ``target_variant``). It sends
sample reviews in every content type the handler accepts, asks for every response type, and checks

- the answer's shape: one result per review, each with a sentiment, a label in -1/0/1 and probabilities that
  sum to 1;
- that reviews nobody could misread get the right sentiment;
- that a malformed request is refused as the client's error (a ``ModelError`` carrying a 4xx), not a crash.

Every failed check is collected, so one run says everything that is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

UNMISTAKABLE = {
    "positive": [
        "I love this dress! It fits perfectly, the fabric is soft and beautiful. Five stars, buying another.",
        "Absolutely gorgeous top, great quality and so flattering. I get compliments every time I wear it.",
    ],
    "negative": [
        "Terrible quality. The fabric ripped after one wash and it looks cheap. Very disappointed, returned it.",
        "Awful fit, way too small and the seams came apart. Worst purchase ever, do not buy.",
    ],
}
SENTIMENT_LABELS = {"negative": -1, "neutral": 0, "positive": 1}
REQUEST_TYPES = ("application/json", "application/jsonlines", "text/csv")
RESPONSE_TYPES = ("application/json", "application/jsonlines")


class SmokeTestFailed(Exception):
    """The endpoint does not answer as a deployed model must; ``report.failures`` says how."""

    def __init__(self, report: SmokeReport) -> None:
        self.report = report
        super().__init__(f"the smoke test of {report.endpoint_name} failed: " + "; ".join(report.failures))


@dataclass
class SmokeReport:
    endpoint_name: str
    target_variant: str | None = None
    invocations: int = 0
    checks: int = 0
    failed_checks: int = 0
    failures: list[str] = field(default_factory=list)
    served_by: set[str] = field(default_factory=set)
    """The variants that answered (``InvokedProductionVariant``)."""

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        verdict = "passed" if self.passed else f"FAILED: {self.failed_checks} of {self.checks} checks failed"
        variants = ", ".join(sorted(self.served_by)) or "none"
        return f"smoke test of {self.endpoint_name} {verdict}: {self.invocations} invocations, answered by {variants}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "EndpointName": self.endpoint_name,
            "TargetVariant": self.target_variant,
            "Passed": self.passed,
            "Invocations": self.invocations,
            "Checks": self.checks,
            "FailedChecks": self.failed_checks,
            "Failures": self.failures,
            "InvokedProductionVariants": sorted(self.served_by),
        }


def _encode(reviews: list[str], content_type: str) -> bytes:
    if content_type == "application/json":
        return json.dumps({"features": reviews}).encode("utf-8")
    if content_type == "application/jsonlines":
        return "".join(json.dumps({"features": review}) + "\n" for review in reviews).encode("utf-8")
    return "".join(_csv_field(review) + "\n" for review in reviews).encode("utf-8")


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _decode(body: bytes, accept: str) -> list[Any]:
    text = body.decode("utf-8")
    if accept == "application/json":
        document = json.loads(text)
        if not isinstance(document, list):
            raise ValueError(f"a JSON answer must be a list, got {type(document).__name__}")
        return document
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _result_problems(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return [f"a result is a {type(result).__name__}, not an object"]
    problems = []
    sentiment = result.get("sentiment")
    if sentiment not in SENTIMENT_LABELS:
        problems.append(f"sentiment {sentiment!r} is not one of {', '.join(SENTIMENT_LABELS)}")
    elif result.get("predicted_label") != SENTIMENT_LABELS[sentiment]:
        problems.append(
            f"predicted_label {result.get('predicted_label')!r} does not match sentiment {sentiment}"
        )
    probabilities = result.get("probabilities")
    if not isinstance(probabilities, dict) or set(probabilities) != set(SENTIMENT_LABELS):
        problems.append(f"probabilities {probabilities!r} do not name the three sentiments")
    elif not math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-3):
        problems.append(f"probabilities sum to {sum(probabilities.values()):.4f}, not 1")
    return problems


def run_smoke_test(runtime: Any, endpoint_name: str, target_variant: str | None = None) -> SmokeReport:
    """Invoke ``endpoint_name`` through ``runtime`` (a boto3 ``sagemaker-runtime`` client); never raises.

    ``target_variant`` sends every request to that production variant (``TargetVariant``), which is how the
    local rollout tests a candidate before it takes the endpoint's traffic.
    """
    report = SmokeReport(endpoint_name, target_variant)
    expected = [(review, sentiment) for sentiment, reviews in UNMISTAKABLE.items() for review in reviews]
    reviews = [review for review, _ in expected]
    extra = {"TargetVariant": target_variant} if target_variant else {}

    def invoke(body: bytes, content_type: str, accept: str) -> dict[str, Any]:
        report.invocations += 1
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint_name, Body=body, ContentType=content_type, Accept=accept, **extra
        )
        if answer.get("InvokedProductionVariant"):
            report.served_by.add(answer["InvokedProductionVariant"])
        return answer

    def check(description: str, test: Callable[[], list[str]]) -> None:
        report.checks += 1
        try:
            problems = test()
        except Exception as error:  # a check that cannot even run has failed; say why and go on
            problems = [f"{type(error).__name__}: {error}"]
        report.failed_checks += bool(problems)
        report.failures.extend(f"{description}: {problem}" for problem in problems)

    for content_type in REQUEST_TYPES:
        for accept in RESPONSE_TYPES:

            def answers(content_type: str = content_type, accept: str = accept) -> list[str]:
                answer = invoke(_encode(reviews, content_type), content_type, accept)
                returned_type = (answer.get("ContentType") or "").split(";")[0]
                results = _decode(answer["Body"].read(), accept)
                problems = [] if returned_type == accept else [f"answered in {returned_type!r}"]
                if len(results) != len(reviews):
                    return [*problems, f"{len(results)} results for {len(reviews)} reviews"]
                for (review, sentiment), result in zip(expected, results, strict=True):
                    problems.extend(_result_problems(result))
                    if isinstance(result, dict) and result.get("sentiment") != sentiment:
                        problems.append(f"{review[:40]!r}... is {result.get('sentiment')!r}, not {sentiment}")
                return problems

            check(f"{content_type} -> {accept}", answers)

    def refuses_bad_input() -> list[str]:
        try:
            invoke(b'{"features": 42}', "application/json", "application/json")
        except Exception as error:
            response = getattr(error, "response", {})
            code = response.get("Error", {}).get("Code")
            original = response.get("OriginalStatusCode")
            if code == "ModelError" and isinstance(original, int) and 400 <= original < 500:
                return []
            return [
                f"answered {code or type(error).__name__} (original status {original}), not a 4xx ModelError"
            ]
        return ["a request without reviews got predictions"]

    check("a malformed request", refuses_bad_input)
    return report


def wait_in_service(sagemaker: Any, endpoint_name: str, timeout_seconds: int = 3600) -> None:
    """Wait until an AWS endpoint is ``InService`` (after an update, too); a ``Failed`` one raises at once."""
    delay = 30
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint_name,
        WaiterConfig={"Delay": delay, "MaxAttempts": max(1, timeout_seconds // delay)},
    )
