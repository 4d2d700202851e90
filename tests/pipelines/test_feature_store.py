"""The local Feature Store: offline store in Parquet, SQL through DuckDB, the online view, the runtime API."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from model_build.steps.features import FEATURE_NAMES
from pipelines.local.feature_store import ONLINE_VIEW, FeatureStore, FeatureStoreError
from pipelines.local.feature_store_server import serve

GROUP = "review-sentiment-dev-reviews"


def record(review_id: str, date: str = "2024-05-01T12:00:00Z", sentiment: int = 1) -> list[dict[str, str]]:
    values = {
        "review_id": review_id,
        "date": date,
        "sentiment": str(sentiment),
        "label_id": str(sentiment + 1),
        "input_ids": "[0, 5, 2]",
        "review_body": f"review {review_id}",
        "split_type": "train",
    }
    return [{"FeatureName": name, "ValueAsString": values[name]} for name in FEATURE_NAMES]


@pytest.fixture
def store(tmp_path):
    return FeatureStore(tmp_path / "offline-store")


def test_empty_store_answers_queries(store):
    assert store.query(f"SELECT count(*) FROM {ONLINE_VIEW}") == (["count_star()"], [(0,)])
    assert store.get_record("nope") is None


def test_reingesting_does_not_duplicate_the_online_view_and_the_latest_event_wins(store):
    for review_id in ("a", "b", "c"):
        store.put_record(record(review_id))
    for review_id in ("a", "b", "c"):
        store.put_record(record(review_id))  # the same records again, e.g. a rerun of processing
    store.put_record(record("a", date="2024-05-02T00:00:00Z", sentiment=-1))  # a newer event
    store.put_record(record("b", date="2024-04-01T00:00:00Z", sentiment=-1))  # an older one arriving late
    assert store.query("SELECT count(*) FROM reviews") == (["count_star()"], [(3,)])
    assert store.query("SELECT count(*) FROM reviews_history")[1] == [(8,)]
    assert store.get_record("a")["sentiment"] == -1
    assert store.get_record("b")["sentiment"] == 1
    _, rows = store.query("SELECT sentiment, count(*) FROM reviews GROUP BY 1 ORDER BY 1")
    assert rows == [(-1, 1), (1, 2)]
    # Typed columns, as the feature definitions say, plus the offline store's own columns.
    columns, rows = store.query("SELECT * FROM reviews_history LIMIT 1")
    assert columns == [*FEATURE_NAMES, "write_time", "api_invocation_time", "is_deleted"]
    assert isinstance(rows[0][2], int)
    # Partitioned by event time, as the offline store is in S3.
    assert any(path.match("year=2024/month=05/day=02/hour=00/*.parquet") for path in store.root.rglob("*"))


def test_delete_removes_from_the_online_view_and_keeps_history(store):
    store.put_record(record("a"))
    store.delete_record("a")
    assert store.get_record("a") is None
    assert store.query("SELECT review_id, is_deleted FROM reviews_history ORDER BY is_deleted")[1] == [
        ("a", False),
        ("a", True),
    ]
    with pytest.raises(FeatureStoreError, match="no record review_id='a' to delete"):
        store.delete_record("a")
    store.put_record(record("a", date="2030-01-01T00:00:00Z"))  # a newer write brings it back
    assert store.get_record("a")["date"] == "2030-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([{"FeatureName": "colour", "ValueAsString": "red"}], "'colour' is not defined"),
        (record("a")[:1], "no 'date'"),
        (
            [*record("a")[:2], {"FeatureName": "sentiment", "ValueAsString": "very"}],
            "'sentiment' is Integral",
        ),
        ([record("a")[0], {"FeatureName": "date", "ValueAsString": "yesterday"}], "not an ISO-8601"),
        ([*record("a"), record("a")[0]], "appears twice"),
    ],
)
def test_invalid_records_are_refused(store, bad, message):
    with pytest.raises(FeatureStoreError, match=message):
        store.put_record(bad)


def test_bad_sql_names_the_tables(store):
    with pytest.raises(FeatureStoreError, match=r"tables: reviews\(review_id"):
        store.query("SELECT colour FROM reviews")


def test_runtime_api_stand_in_answers_boto3_as_the_service_does(store):
    with serve(store, GROUP) as server:
        client = boto3.client(
            "sagemaker-featurestore-runtime",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        for review_id in ("a", "b"):
            client.put_record(FeatureGroupName=GROUP, Record=record(review_id))
        got = client.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="a")
        assert {f["FeatureName"]: f["ValueAsString"] for f in got["Record"]}["review_body"] == "review a"
        assert "Record" not in client.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="zz")
        only = client.get_record(
            FeatureGroupName=GROUP, RecordIdentifierValueAsString="a", FeatureNames=["sentiment"]
        )
        assert only["Record"] == [{"FeatureName": "sentiment", "ValueAsString": "1"}]

        with pytest.raises(ClientError) as refused:
            client.put_record(
                FeatureGroupName=GROUP, Record=[{"FeatureName": "colour", "ValueAsString": "x"}]
            )
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert "'colour' is not defined" in refused.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as missing:
            client.put_record(FeatureGroupName="another-group", Record=record("a"))
        assert missing.value.response["Error"]["Code"] == "ResourceNotFound"

        client.delete_record(
            FeatureGroupName=GROUP, RecordIdentifierValueAsString="b", EventTime="2024-06-01T00:00:00Z"
        )
        assert "Record" not in client.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="b")

        written = client.batch_write_record(
            Entries=[
                {"FeatureGroupName": GROUP, "Record": record("c")},
                {"FeatureGroupName": GROUP, "Record": record("e")[:1]},
            ]
        )
        assert [error["ErrorCode"] for error in written["Errors"]] == ["ValidationError"]
        batch = client.batch_get_record(
            Identifiers=[{"FeatureGroupName": GROUP, "RecordIdentifiersValueAsString": ["a", "c", "zz"]}]
        )
        assert [r["RecordIdentifierValueAsString"] for r in batch["Records"]] == ["a", "c"]
        client.put_record(
            FeatureGroupName=GROUP, Record=record("d")
        )  # buffered: written when the server stops
    assert store.query("SELECT review_id FROM reviews ORDER BY 1")[1] == [("a",), ("c",), ("d",)]
