"""The evaluation step's champion/challenger check: the champion is scored with the challenger's code on the
same test split, and ``champion_check`` (what the quality gate reads) holds only when the challenger's
macro-F1 margin over it reaches ``--min-champion-margin``, or when there is no champion.

The models are the tiny RoBERTa with its classifier biased to one answer, so every score is known in advance:
a model that always answers sentiment ``s`` has macro-F1 ``(2p / (1 + p)) / 3`` where ``p`` is the share of
``s`` in the test split, so "always positive" (the sample's majority) beats "always negative".
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import champion
import evaluate
import pytest

from model_build.pipeline_spec import CHAMPION_CHECK_JSON_PATH, EVALUATION_FILE
from tests.model_build.review_splits import labelled_model, write_splits

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/reviews/7"


def always(model_dir: Path, sentiment: str, folder: Path) -> Path:
    """A copy of the labelled tiny model whose classifier answers ``sentiment`` for every review."""
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    shutil.copytree(model_dir, folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    head = getattr(
        model.classifier, "out_proj", model.classifier
    )  # RoBERTa's head has two layers, BERT's one
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-50.0)
        head.bias[model.config.label2id[sentiment]] = 50.0
    model.save_pretrained(folder)
    return folder


def packed(model_dir: Path, archive: Path) -> Path:
    """``model.tar.gz`` as training writes it: the model files at the archive's root."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    return archive


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("champion-models")
    labelled = labelled_model(tiny_roberta_dir, root / "labelled")
    positive = always(labelled, "1", root / "positive")
    negative = always(labelled, "-1", root / "negative")
    return {
        "positive": positive,
        "negative": negative,
        "positive.tar.gz": packed(positive, root / "positive.tar.gz"),
    }


@pytest.fixture(scope="module")
def test_split(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path, tiny_roberta_dir: Path) -> Path:
    return write_splits(tmp_path_factory.mktemp("splits"), sample_csv, tiny_roberta_dir, limit=400)["test"]


def named(url: Path) -> tuple[str, ...]:
    """The arguments that name a champion: its version's ARN and its model."""
    return ("--champion-model-package-arn", ARN, "--champion-model-url", str(url))


def run(model: Path, test_split: Path, output: Path, *champion_args: str) -> dict[str, Any]:
    code = evaluate.main(
        ["--model-path", str(model), "--test-data", str(test_split), "--output-data", str(output),
         *champion_args]
    )  # fmt: skip
    assert code == 0
    return json.loads((output / EVALUATION_FILE).read_text())


def at(report: dict[str, Any], path: str) -> Any:
    """The value at a dot-separated path, as SageMaker's ``JsonGet`` reads it; KeyError when absent."""
    for key in path.split("."):
        report = report[key]
    return report


def test_no_champion_holds_and_the_report_says_why(
    models: dict[str, Path], test_split: Path, tmp_path: Path
) -> None:
    report = run(models["negative"], test_split, tmp_path / "out", "--min-champion-margin", "0.5")
    assert at(report, CHAMPION_CHECK_JSON_PATH) is True
    check = report["champion_check"]
    assert check["outcome"] == "no champion" and check["min_margin"] == 0.5
    assert "no version serves production" in check["message"]
    assert report["champion"]["f1_macro"]["value"] is None and "skipped" in report["champion"]
    assert report["f1_macro_margin_over_champion"]["value"] is None

    explicitly = run(
        models["negative"], test_split, tmp_path / "none", "--champion-model-package-arn", "none",
        "--champion-model-url", str(models["positive.tar.gz"]),
    )  # fmt: skip
    assert explicitly["champion_check"]["outcome"] == "no champion"
    assert "ChampionModelPackageArn=none" in explicitly["champion"]["skipped"]


def test_a_challenger_worse_than_the_champion_fails_the_check(
    models: dict[str, Path], test_split: Path, tmp_path: Path
) -> None:
    report = run(models["negative"], test_split, tmp_path / "out", *named(models["positive.tar.gz"]))
    challenger, scored = report["metrics"], report["champion"]
    positives = scored["per_class"]["positive"]["support"] / scored["examples"]
    assert scored["f1_macro"]["value"] == pytest.approx(2 * positives / (1 + positives) / 3)
    assert scored["per_class"]["positive"]["recall"] == 1.0 and scored["model_package_arn"] == ARN
    margin = challenger["f1_macro"]["value"] - scored["f1_macro"]["value"]
    assert margin < 0
    assert report["f1_macro_margin_over_champion"]["value"] == pytest.approx(margin)
    assert at(report, CHAMPION_CHECK_JSON_PATH) is False
    assert report["champion_check"]["outcome"] == "fails"
    assert (
        ARN in report["champion_check"]["message"]
        and "< MinChampionMargin" in report["champion_check"]["message"]
    )


def test_a_challenger_better_than_the_champion_holds_and_a_demanded_margin_can_fail_it(
    models: dict[str, Path], test_split: Path, tmp_path: Path
) -> None:
    # The champion as a saved folder (a local path, as the local runner hands it over) works like an archive.
    report = run(models["positive"], test_split, tmp_path / "better", *named(models["negative"]))
    margin = report["f1_macro_margin_over_champion"]["value"]
    assert margin > 0 and at(report, CHAMPION_CHECK_JSON_PATH) is True

    # The same model as its own champion: a margin of exactly 0, which 0 accepts and 0.01 does not.
    same = named(models["positive.tar.gz"])
    tie = run(models["positive"], test_split, tmp_path / "tie", *same)
    assert tie["f1_macro_margin_over_champion"]["value"] == 0.0 and tie["champion_check"]["holds"] is True
    assert {k: v for k, v in tie["champion"].items() if k in tie["metrics"]} == tie["metrics"]
    demanding = run(
        models["positive"], test_split, tmp_path / "demand", *same, "--min-champion-margin", "0.01"
    )
    assert demanding["champion_check"]["holds"] is False


def test_a_champion_that_cannot_be_fetched_or_has_no_model_url_fails_clearly(
    models: dict[str, Path], test_split: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = ["--model-path", str(models["positive"]), "--test-data", str(test_split)]
    missing = tmp_path / "gone.tar.gz"
    code = evaluate.main([*base, "--output-data", str(tmp_path / "a"), *named(missing)])
    assert code == 2
    assert (
        f"the champion {ARN} cannot be scored" in caplog.text
        and "ChampionModelPackageArn=none" in caplog.text
    )
    caplog.clear()
    code = evaluate.main([*base, "--output-data", str(tmp_path / "b"), "--champion-model-package-arn", ARN])
    assert code == 2 and "without --champion-model-url" in caplog.text
    assert not (tmp_path / "b" / EVALUATION_FILE).exists()


def test_the_comparison_without_a_model() -> None:
    """``compare`` on metrics alone: worse, better, equal and no champion."""

    def scores(f1: float) -> dict[str, Any]:
        return {"f1_macro": {"value": f1}, "accuracy": {"value": f1}}

    named = champion.champion_entry(champion.ChampionArguments(ARN, "s3://b/m.tar.gz", 0.0), scores(0.7))
    assert champion.compare(scores(0.6), named, 0.0)["champion_check"]["holds"] is False
    assert champion.compare(scores(0.8), named, 0.0)["champion_check"]["holds"] is True
    assert champion.compare(scores(0.7), named, 0.0)["champion_check"]["holds"] is True
    assert champion.compare(scores(0.75), named, 0.1)["champion_check"]["holds"] is False
    assert champion.compare(scores(0.0), champion.no_champion("none yet"), 0.5)["champion_check"]["holds"]


def test_a_champion_with_another_tokenizer_reads_the_review_text_tokenized_its_own_way(
    models: dict[str, Path],
    test_split: Path,
    tmp_path: Path,
    minilm_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A champion fine-tuned from another model (the bundled MiniLM, against the tiny RoBERTa's ids in the
    split) must not read ids of a vocabulary it does not know: it gets ``review_body`` through its own tokenizer."""
    import logging

    minilm = always(labelled_model(minilm_dir, tmp_path / "minilm-labelled"), "1", tmp_path / "minilm")
    with caplog.at_level(logging.INFO, logger="evaluate"):
        report = run(models["negative"], test_split, tmp_path / "out", *named(minilm))
    assert "tokenized again" in caplog.text
    scored = report["champion"]
    assert (
        scored["per_class"]["positive"]["recall"] == 1.0
        and scored["examples"] == report["metrics"]["examples"]
    )
    assert report["champion_check"]["holds"] is False
