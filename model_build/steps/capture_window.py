"""One window of an endpoint's capture files, read line by line, as the monitoring job (``monitor.py``) needs it.

The layout is SageMaker's: ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``, one invocation per line
(``captureData.endpointInput`` and ``endpointOutput``: data declared ``JSON``, ``CSV`` or ``BASE64``, and
``eventMetadata.inferenceTime``), in a local folder or under an ``s3://`` prefix. Only the hour folders that
can hold the window are listed; each file is streamed, so memory does not grow with the window. Requests are
read as the handler reads them (``model_deploy/serving/inference.py``: ``{"features"|"inputs": ...}``, a JSON
list, JSON lines, or CSV with one review per line); a line that cannot be used raises :class:`Malformed` with
the reason it is counted under.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drift import SENTIMENT_NAMES

JSON_TYPES = ("application/json",)
JSON_LINES_TYPES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
CSV_TYPES = ("text/csv",)


class WindowError(ValueError):
    """A window argument that is not a time: the message says what is accepted."""


# ------------------------------------------------------------------------------------------------ window
def parse_time(text: str, now: datetime) -> datetime:
    """``2026-12-01T10:00:00Z`` (or any ISO-8601 time; UTC when it has no zone), or ``90m``/``2h``/``1d`` ago."""
    relative = re.fullmatch(r"(\d+)\s*([mhd])", text.strip())
    if relative:
        amount, unit = int(relative[1]), relative[2]
        try:
            return now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
        except OverflowError:
            raise WindowError(f"{text!r} reaches back before the year 1: give a shorter age") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WindowError(
            f"{text!r} is not a time: use ISO-8601 (2026-12-01T10:00:00Z) or an age (30m, 2h, 1d)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    def hours(self) -> list[datetime]:
        """Every hour folder (``yyyy/mm/dd/hh``) that can hold a line of the window."""
        hour = self.since.replace(minute=0, second=0, microsecond=0)
        hours = []
        while hour < self.until:
            hours.append(hour)
            hour += timedelta(hours=1)
        return hours

    def __contains__(self, moment: datetime) -> bool:
        return self.since <= moment < self.until


# ------------------------------------------------------------------------------------------------ captures
class CaptureSource:
    """The capture files of a window, each as an iterator of its lines (bytes)."""

    def files(self, window: Window) -> Iterator[tuple[str, Iterator[bytes]]]:
        raise NotImplementedError


def _is_year(name: str) -> bool:
    return len(name) == 4 and name.isdigit()


@dataclass
class FolderCaptures(CaptureSource):
    """A local folder: ``<root>/[<variant>/]yyyy/mm/dd/hh/*.jsonl``."""

    root: Path

    def hour_roots(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        children = sorted(child for child in self.root.iterdir() if child.is_dir())
        if any(_is_year(child.name) for child in children):
            return [self.root]
        return [c for c in children if any(_is_year(g.name) for g in c.iterdir() if g.is_dir())]

    def files(self, window: Window) -> Iterator[tuple[str, Iterator[bytes]]]:
        for root in self.hour_roots():
            for hour in window.hours():
                for path in sorted((root / hour.strftime("%Y/%m/%d/%H")).glob("*.jsonl")):
                    yield str(path), _lines_of(path)


def _lines_of(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


@dataclass
class S3Captures(CaptureSource):
    """``s3://bucket/<prefix>/<endpoint>[/<variant>]``: listed per hour, each object streamed line by line."""

    uri: str
    client: Any = None

    def _client(self) -> Any:
        if self.client is None:
            import boto3

            self.client = boto3.client("s3")
        return self.client

    def files(self, window: Window) -> Iterator[tuple[str, Iterator[bytes]]]:
        bucket, _, prefix = self.uri.removeprefix("s3://").partition("/")
        prefix = prefix.rstrip("/") + "/"
        client = self._client()
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
        children = [p["Prefix"] for p in listed.get("CommonPrefixes", [])]
        years = [c for c in children if _is_year(c[len(prefix) :].rstrip("/"))]
        roots = [prefix] if years else children
        paginator = client.get_paginator("list_objects_v2")
        for root in roots:
            for hour in window.hours():
                for page in paginator.paginate(
                    Bucket=bucket, Prefix=f"{root}{hour.strftime('%Y/%m/%d/%H')}/"
                ):
                    for item in sorted(page.get("Contents", []), key=lambda o: o["Key"]):
                        if item["Key"].endswith(".jsonl"):
                            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"]
                            yield f"s3://{bucket}/{item['Key']}", body.iter_lines()


def capture_source(location: str) -> CaptureSource:
    return S3Captures(location) if location.startswith("s3://") else FolderCaptures(Path(location))


# ------------------------------------------------------------------------------------------------ records
class Malformed(Exception):
    """A capture line that cannot be used; ``reason`` is the counter's key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class Invocation:
    """One captured request: its reviews (empty: an empty request) and the answers, when readable."""

    time: datetime | None
    reviews: list[str]
    predictions: list[tuple[str, float]] | None
    non_utf8: bool = False
    refused: bool = False
    version: str | None = None
    """The model version that answered, where the capture says (the local mode's ``modelVersion``)."""


def _media_type(content_type: Any) -> str:
    return str(content_type or "").split(";")[0].strip().lower()


def _payload_bytes(payload: Any, side: str) -> tuple[str, bytes]:
    """The content type and raw body of ``endpointInput``/``endpointOutput``, base64 decoded if declared."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), str):
        raise Malformed(f"{side} missing", f"captureData.{side} has no 'data' string")
    encoding = str(payload.get("encoding", "")).upper()
    data = payload["data"]
    if encoding == "BASE64":
        try:
            return _media_type(payload.get("observedContentType")), base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise Malformed(f"{side} not base64", "declared BASE64, is not") from None
    if encoding in ("JSON", "CSV", ""):
        return _media_type(payload.get("observedContentType")), data.encode("utf-8", "surrogatepass")
    raise Malformed(f"{side} unknown encoding", f"encoding {encoding!r}")


def _reviews(content_type: str, text: str) -> list[str]:
    """The reviews of a request, read as the handler reads them (``model_deploy/serving/inference.py``)."""
    if content_type in JSON_TYPES:
        return _json_reviews(_json(text, "request"))
    if content_type in JSON_LINES_TYPES:
        reviews = []
        for line in text.splitlines():
            if line.strip():
                reviews.extend(_json_reviews(_json(line, "request")))
        return reviews
    if content_type in CSV_TYPES:
        try:
            return [",".join(row) for row in csv.reader(io.StringIO(text.rstrip("\r\n")))]
        except csv.Error as error:
            raise Malformed("request not CSV", str(error)) from None
    raise Malformed("request content type unsupported", content_type or "(none)")


def _json(text: str, side: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise Malformed(f"{side} not JSON", str(error)[:200]) from None


def _json_reviews(document: Any) -> list[str]:
    if isinstance(document, dict):
        keys = [key for key in ("features", "inputs") if key in document]
        if len(keys) != 1:
            raise Malformed("request shape unknown", f"keys {sorted(document)[:5]}")
        document = document[keys[0]]
    if isinstance(document, str):
        return [document]
    if isinstance(document, list) and all(isinstance(item, str) for item in document):
        return document
    raise Malformed("request shape unknown", f"a JSON {type(document).__name__}, not strings")


def _predictions(content_type: str, text: str) -> list[tuple[str, float]] | None:
    """(sentiment, top probability) per review; None for an answered error (``{"error": ...}``)."""
    if content_type in JSON_LINES_TYPES:
        results = [_json(line, "response") for line in text.splitlines() if line.strip()]
    else:
        results = _json(text, "response")
    if isinstance(results, dict) and "error" in results:
        return None
    if not isinstance(results, list):
        results = [results]
    predictions = []
    for result in results:
        if isinstance(result, dict) and "error" in result:
            return None
        sentiment = result.get("sentiment") if isinstance(result, dict) else None
        probability = result.get("probability") if isinstance(result, dict) else None
        if sentiment not in SENTIMENT_NAMES or isinstance(probability, bool):
            raise Malformed("response shape unknown", "a result without a known 'sentiment'")
        if not isinstance(probability, int | float) or not 0 <= probability <= 1:
            raise Malformed("response shape unknown", f"probability {probability!r}")
        predictions.append((str(sentiment), float(probability)))
    return predictions


def parse_line(line: bytes) -> Invocation:
    """One capture line -> :class:`Invocation`; raises :class:`Malformed` with the reason it is unusable."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        raise Malformed("line not JSON") from None
    capture = record.get("captureData") if isinstance(record, dict) else None
    if not isinstance(capture, dict):
        raise Malformed("no captureData")
    metadata = record.get("eventMetadata") or {}
    version = metadata.get("modelVersion") if isinstance(metadata, dict) else None
    version = str(version) if isinstance(version, int | str) and not isinstance(version, bool) else None
    time = None
    if isinstance(metadata, dict) and isinstance(metadata.get("inferenceTime"), str):
        try:
            time = datetime.fromisoformat(metadata["inferenceTime"]).astimezone(UTC)
        except ValueError:
            raise Malformed("inferenceTime not a time", metadata["inferenceTime"][:40]) from None
    request_type, request = _payload_bytes(capture.get("endpointInput"), "endpointInput")
    try:
        text = request.decode("utf-8")
    except UnicodeDecodeError:
        return Invocation(time, [], None, non_utf8=True, version=version)
    reviews = [review for review in _reviews(request_type, text) if review.strip()]
    if not reviews:
        return Invocation(time, [], None, version=version)
    response_type, response = _payload_bytes(capture.get("endpointOutput"), "endpointOutput")
    try:
        predictions = _predictions(response_type, response.decode("utf-8"))
    except UnicodeDecodeError:
        raise Malformed("response not UTF-8") from None
    if predictions is None:
        return Invocation(time, reviews, None, refused=True, version=version)
    if len(predictions) != len(reviews):
        raise Malformed(
            "response does not match request", f"{len(predictions)} results, {len(reviews)} reviews"
        )
    return Invocation(time, reviews, predictions, version=version)
