"""The drift monitor's inputs for a model package: its baseline and the image to run the job on.

The evaluation step writes ``monitoring-baseline/`` beside ``evaluation.json``, which the package's
``ModelMetrics.ModelQuality.Statistics`` names; the job runs on the package's own serving image (the Hugging
Face PyTorch inference DLC, CPU, with transformers and tokenizers), with the pinned step requirements on top.
"""

from __future__ import annotations

from typing import Any

from model_deploy.aws.render import MonitorInputs

BASELINE_FOLDER = "monitoring-baseline"
"""``model_build/steps/drift.py``'s ``BASELINE_FOLDER``."""


def monitor_inputs(sagemaker: Any, package_arn: str) -> MonitorInputs | None:
    """The package's baseline and image, or None when it has no evaluation report (registered by hand)."""
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    report = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if not report or not containers:
        return None
    return MonitorInputs(f"{report.rsplit('/', 1)[0]}/{BASELINE_FOLDER}", containers[0]["Image"])
