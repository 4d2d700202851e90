"""The champion/challenger check of the evaluation step: fetch the champion's model, compare, decide.

The champion is the model version production serves (without one, the newest approved version). The runners
resolve it when an execution starts (``pipelines run``, locally and with ``--sagemaker``) and pass it to the
evaluation step as two pipeline parameters: ``ChampionModelPackageArn`` (which version: recorded with the
execution, so the run is reproducible and the step's cache key changes with the champion) and
``ChampionModelUrl`` (its ``model.tar.gz``, which this module fetches). :mod:`evaluate` scores the champion
with the same code and on the same test split as the new model (the challenger) and writes what this module
builds into ``evaluation.json``::

    champion.model_package_arn                      the version scored (or null)
    champion.accuracy.value, champion.f1_macro.value the champion's metrics, shaped as ``metrics`` (null if none)
    champion.skipped                                 why there is no champion (only then)
    f1_macro_margin_over_champion.value              challenger macro-F1 minus the champion's (null if none)
    champion_check.holds                             what the quality gate reads (pipeline_spec.CHAMPION_CHECK_JSON_PATH)
    champion_check.outcome                           "holds", "fails" or "no champion"
    champion_check.min_margin                        MinChampionMargin, as the gate was given it
    champion_check.message                           the comparison, in words (the gate's failure message quotes it)

The decision is made here rather than by comparing the margin in the ``ConditionStep``, because "no champion"
must hold: a ``JsonGet`` of a null margin is no number a SageMaker condition can compare, and an invented
number would be a lie in the report. Pure standard library (and boto3, which the job's image has, for S3).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAMPION_JSON_KEY = "champion"
CHAMPION_MARGIN_JSON_KEY = "f1_macro_margin_over_champion"
CHAMPION_CHECK_JSON_KEY = "champion_check"
NO_CHAMPION = "none"
"""``ChampionModelPackageArn=none``: run without a champion on purpose (the check then holds, and says so)."""
HOLDS, FAILS, NO_CHAMPION_OUTCOME = "holds", "fails", "no champion"


class ChampionError(ValueError):
    """The champion named cannot be fetched or scored: the message says which and how to go on without it."""


@dataclass(frozen=True)
class ChampionArguments:
    """What the evaluation step is told about the champion (empty strings: none)."""

    model_package_arn: str
    model_url: str
    min_margin: float

    @property
    def named(self) -> bool:
        """A champion to score: a model URL (the ARN alone cannot be fetched by the job)."""
        return bool(self.model_url)

    def absent_reason(self) -> str:
        if self.model_package_arn.lower() == NO_CHAMPION:
            return "no champion: ChampionModelPackageArn=none (run without one on purpose)"
        return (
            "no champion: none named (no version serves production and none is approved yet, or the "
            "execution was started without `pipelines run`, which names it)"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluation script's champion arguments (the pipeline passes all three)."""
    parser.add_argument(
        "--champion-model-package-arn",
        default="",
        help="The champion's model package (version) ARN, for the report; empty or 'none': no champion.",
    )
    parser.add_argument(
        "--champion-model-url",
        default="",
        help="The champion's model.tar.gz: an s3:// URI, a local file, or a saved model folder.",
    )
    parser.add_argument(
        "--min-champion-margin",
        type=float,
        default=0.0,
        help="The new model's macro-F1 minus the champion's must reach this (MinChampionMargin).",
    )


def arguments(args: argparse.Namespace) -> ChampionArguments:
    arn = args.champion_model_package_arn.strip()
    url = "" if arn.lower() == NO_CHAMPION else args.champion_model_url.strip()
    if arn and not url and arn.lower() != NO_CHAMPION:
        raise ChampionError(
            f"--champion-model-package-arn {arn} came without --champion-model-url: the job cannot fetch "
            "a model package by its ARN. `pipelines run` sets both; a start from elsewhere must set "
            "ChampionModelUrl to the version's ModelDataUrl (or ChampionModelPackageArn=none)"
        )
    return ChampionArguments(arn, url, args.min_champion_margin)


def fetch(url: str, workspace: Path) -> Path:
    """The champion's model as a local path: an ``s3://`` object is downloaded into ``workspace``."""
    if not url.startswith("s3://"):
        path = Path(url)
        if not path.exists():
            raise ChampionError(f"the champion's model {url} does not exist")
        return path
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = url.removeprefix("s3://").partition("/")
    target = workspace / Path(key).name
    try:
        boto3.client("s3").download_file(bucket, key, str(target))
    except (BotoCoreError, ClientError) as error:
        raise ChampionError(f"cannot download the champion's model {url}: {error}") from error
    return target


def no_champion(reason: str) -> dict[str, Any]:
    """The ``champion`` entry when there is none: the reason, and null metrics where the gate would look."""
    return {
        "skipped": reason,
        "model_package_arn": None,
        "accuracy": {"value": None},
        "f1_macro": {"value": None},
    }


def champion_entry(champion: ChampionArguments, metrics: dict[str, Any]) -> dict[str, Any]:
    """The ``champion`` entry of a scored champion: its metrics (shaped as ``metrics``) and which it is."""
    return {
        **metrics,
        "model_package_arn": champion.model_package_arn or None,
        "model_url": champion.model_url,
    }


def compare(
    challenger: dict[str, Any], entry: dict[str, Any], min_margin: float
) -> dict[str, dict[str, Any]]:
    """``f1_macro_margin_over_champion`` and ``champion_check`` from the two models' metrics.

    No champion holds (there is nothing to be worse than), and the report says so rather than show a margin.
    """
    f1 = challenger["f1_macro"]["value"]
    if "skipped" in entry:
        return {
            CHAMPION_MARGIN_JSON_KEY: {"value": None, "skipped": entry["skipped"]},
            CHAMPION_CHECK_JSON_KEY: {
                "holds": True,
                "outcome": NO_CHAMPION_OUTCOME,
                "min_margin": min_margin,
                "message": f"{entry['skipped']}; the check holds",
            },
        }
    champion_f1 = entry["f1_macro"]["value"]
    margin = f1 - champion_f1
    holds = margin >= min_margin
    name = entry.get("model_package_arn") or entry.get("model_url")
    message = (
        f"macro-F1 {f1:.4f} vs the champion's {champion_f1:.4f} ({name}): margin {margin:+.4f} "
        f"{'>=' if holds else '<'} MinChampionMargin {min_margin:+.4f}; the check {HOLDS if holds else FAILS}"
    )
    return {
        CHAMPION_MARGIN_JSON_KEY: {"value": margin},
        CHAMPION_CHECK_JSON_KEY: {
            "holds": holds,
            "outcome": HOLDS if holds else FAILS,
            "min_margin": min_margin,
            "margin": margin,
            "message": message,
        },
    }
