"""The Feature Store records of the kept rows, and their ingestion through ``PutRecord`` with retries.

The records are typed as ``features.FEATURE_DEFINITIONS`` says (``input_ids`` as a JSON list) and carry the
run's event time; a record refused after :data:`PUT_ATTEMPTS` tries is counted and written out, never lost.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import features
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    pass


PUT_ATTEMPTS = 10
"""Tries per record, the first included, before it counts as failed (botocore's adaptive retry mode)."""
"""``rejects/summary-<hash>.json``: in a declared output, so SageMaker uploads it with the rejects."""


_ARROW_TYPES = {"Integral": pa.int64(), "Fractional": pa.float64(), "String": pa.string()}
FEATURE_SCHEMA = pa.schema([(f.name, _ARROW_TYPES[f.type]) for f in features.FEATURE_DEFINITIONS])
"""The Feature Store records, typed as ``features.FEATURE_DEFINITIONS`` says (``input_ids`` as a JSON list)."""


class FeatureStoreIngestor:
    """Puts records into a feature group with a thread pool; keeps every record that failed after retries.

    Rate: ``PutRecord`` takes one record a call, so an instance puts about ``workers / latency`` records a
    second: at the 10-30 ms a call takes from inside the region, the default 16 threads give roughly 500-1,500
    records/s per instance (the threads wait on the network, not the CPU), and N instances put N times that,
    each its own share. Throttling (``ThrottlingException``, 429, 5xx) is retried by botocore's *adaptive* mode:
    exponential backoff with jitter, plus a client-side rate limit that slows every thread of the instance
    once the service throttles, up to ``PUT_ATTEMPTS`` tries a record. A record that still fails is counted
    and written to ``rejects/ingest-failures-*.csv`` with the error (the record itself is in ``features/``,
    ready to put again), and the step then fails, naming how many: it never reports success with records
    missing from the online store.

    The client is created plainly, so ``AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME`` redirects it (the
    local mode's stand-in). boto3 is imported only here: without ingestion the step needs no AWS library.
    """

    def __init__(self, feature_group_name: str, workers: int) -> None:
        import boto3
        from botocore.config import Config

        self.feature_group_name = feature_group_name
        self.client = boto3.client(
            "sagemaker-featurestore-runtime",
            config=Config(
                retries={"max_attempts": PUT_ATTEMPTS, "mode": "adaptive"}, max_pool_connections=workers
            ),
        )
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="put-record")
        self.put = 0
        self.failures: list[tuple[str, str]] = []
        """(review_id, error) of every record that could not be put."""

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def errors(self) -> list[str]:
        """The first few failures, for the step's error message."""
        return [
            f"{features.RECORD_IDENTIFIER}={review_id}: {error}" for review_id, error in self.failures[:5]
        ]

    def write_failures(self, path: Path) -> None:
        """``review_id,error`` of each failed record (nothing when none failed)."""
        if self.failures:
            pd.DataFrame(self.failures, columns=[features.RECORD_IDENTIFIER, "error"]).to_csv(
                path, index=False
            )

    def _put(self, record: list[dict[str, str]]) -> tuple[str, str] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_record(FeatureGroupName=self.feature_group_name, Record=record)
        except (ClientError, BotoCoreError) as error:
            review_id = next(
                v["ValueAsString"] for v in record if v["FeatureName"] == features.RECORD_IDENTIFIER
            )
            return review_id, str(error)
        return None

    def ingest(self, table: pa.Table) -> None:
        columns = [table.column(name).to_pylist() for name in features.FEATURE_NAMES]
        records = [
            [
                {"FeatureName": name, "ValueAsString": str(value)}
                for name, value in zip(features.FEATURE_NAMES, row, strict=True)
            ]
            for row in zip(*columns, strict=True)
        ]
        for failure in self.pool.map(self._put, records):
            self.put += 1
            if failure is not None:
                self.failures.append(failure)

    def close(self) -> None:
        self.pool.shutdown()


def json_lists(lists: pa.ChunkedArray) -> pa.ChunkedArray:
    """``input_ids`` as the Feature Store stores it, a JSON list per row (``[0,713,2]``), built in Arrow's C++.

    Casting the ids to strings and joining them in Arrow is several times faster than a Python join per row.
    """
    joined = pc.binary_join(pc.cast(lists, pa.list_(pa.string())), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def feature_records(table: pa.Table, event_time: str) -> pa.Table:
    """The Feature Store records of kept rows: ``input_ids`` as a JSON list string, the run's event time."""
    special = {"input_ids", features.EVENT_TIME}
    columns = {name: table[name] for name in features.FEATURE_NAMES if name not in special}
    columns["input_ids"] = json_lists(table["input_ids"])
    columns[features.EVENT_TIME] = pa.array([event_time] * table.num_rows, pa.string())
    return pa.table({name: columns[name] for name in features.FEATURE_NAMES}, schema=FEATURE_SCHEMA)
