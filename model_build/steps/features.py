"""The review feature group's schema, defined once.

Read by the processing step (to write the records), the local Feature Store (DuckDB over Parquet), the
SageMaker pipeline (ingestion) and CDK (``AWS::SageMaker::FeatureGroup``). It is pure standard library so that
it also runs inside the processing container, where the step scripts import it as a sibling module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FeatureType = Literal["Integral", "Fractional", "String"]


@dataclass(frozen=True)
class FeatureDefinition:
    """One feature, with the type names the SageMaker Feature Store API uses."""

    name: str
    type: FeatureType
    description: str

    def as_cfn(self) -> dict[str, str]:
        """The shape of ``AWS::SageMaker::FeatureGroup.FeatureDefinitions`` and of the boto3 API."""
        return {"FeatureName": self.name, "FeatureType": self.type}


RECORD_IDENTIFIER = "review_id"
EVENT_TIME = "date"

FEATURE_DEFINITIONS: tuple[FeatureDefinition, ...] = (
    FeatureDefinition("review_id", "String", "Stable id: a hash of the raw row, unchanged when reprocessed."),
    FeatureDefinition("date", "String", "Event time (ISO-8601 UTC) at which the record was processed."),
    FeatureDefinition("sentiment", "Integral", "-1 (rating 1-2), 0 (rating 3) or 1 (rating 4-5)."),
    FeatureDefinition("label_id", "Integral", "The class index the model trains on: sentiment + 1."),
    FeatureDefinition(
        "input_ids", "String", "Token ids of review_body as a JSON list, truncated to max length."
    ),
    FeatureDefinition("review_body", "String", "The review text the ids were made from."),
    FeatureDefinition("split_type", "String", "train, validation or test."),
)

FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURE_DEFINITIONS)

SENTIMENT_BY_RATING: dict[int, int] = {1: -1, 2: -1, 3: 0, 4: 1, 5: 1}
LABEL_ID_BY_SENTIMENT: dict[int, int] = {-1: 0, 0: 1, 1: 2}
SENTIMENT_BY_LABEL_ID: dict[int, int] = {
    label: sentiment for sentiment, label in LABEL_ID_BY_SENTIMENT.items()
}
SENTIMENT_NAMES: dict[int, str] = {-1: "negative", 0: "neutral", 1: "positive"}

SPLITS: tuple[str, ...] = ("train", "validation", "test")

# The raw input: the columns of the Women's E-Commerce Clothing Reviews CSV the step needs, and all of them.
TEXT_COLUMN = "Review Text"
RATING_COLUMN = "Rating"
LABEL_SOURCE_COLUMN = "Label Source"
"""Set on rows whose label is a person's (``pipelines review export``, A2I): the source and item. The data check
counts them, so a version's lineage says how many human labels its input held."""
RAW_COLUMNS: tuple[str, ...] = (
    "Clothing ID",
    "Age",
    "Title",
    "Review Text",
    "Rating",
    "Recommended IND",
    "Positive Feedback Count",
    "Division Name",
    "Department Name",
    "Class Name",
)
