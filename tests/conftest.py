"""Fixtures shared by the whole suite: the sample data and the two offline models."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from pipelines.models import bundled_model_dir
from tests.tiny_roberta import build_tiny_roberta

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO_ROOT / "data" / "reviews_sample.csv"

# Nothing in the suite may reach a model hub or AWS: fail fast instead of hanging on a network call.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
# An approval rolls the version out to a local endpoint server; only the tests of the rollout turn that on.
os.environ["MLOPS_LOCAL_ROLLOUT"] = "off"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    assert SAMPLE_CSV.is_file(), f"the sample data is missing: {SAMPLE_CSV}"
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return bundled_model_dir()


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> Path:
    with sample_csv.open(newline="", encoding="utf-8") as handle:
        texts = [row["Review Text"] for row in csv.DictReader(handle)]
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"), texts)
