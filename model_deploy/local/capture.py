"""Data capture as SageMaker writes it: JSON lines under ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/``.

Each line is one invocation, its request and its response, in the shape of SageMaker's capture files::

    {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                       "data": "{\"features\": [...]}", "encoding": "JSON"},
                     "endpointOutput": {...,"mode": "OUTPUT", ...}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-12-01T12:00:00Z"}, "eventVersion": "0"}

JSON and CSV bodies are kept as text (the endpoint config declares those content types, so captures are not
base64); anything else, or a body that is not UTF-8, is base64 as SageMaker would write it. A sampling
percentage below 100 keeps that share of invocations, chosen at random.

One field is the local mode's own: ``eventMetadata.modelVersion``, the registry version that answered, so
that a monitoring window names the version it judges even when a promotion happened inside it.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

JSON_CONTENT_TYPES = (
    "application/json",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/jsonl",
)
CSV_CONTENT_TYPES = ("text/csv",)


def _payload(body: bytes, content_type: str, mode: str) -> dict[str, Any]:
    media_type = content_type.split(";")[0].strip().lower()
    encoding = (
        "JSON" if media_type in JSON_CONTENT_TYPES else "CSV" if media_type in CSV_CONTENT_TYPES else None
    )
    data: str | None = None
    if encoding is not None:
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = None
    if encoding is None:
        encoding, data = "BASE64", base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


class CaptureWriter:
    """Appends capture records of one endpoint variant; one file per hour, as complete lines."""

    def __init__(self, destination: Path, endpoint_name: str, variant: str, sampling_percentage: int) -> None:
        self.folder = destination / endpoint_name / variant
        self.sampling_percentage = sampling_percentage
        self._lock = threading.Lock()
        self._hour: str | None = None
        self._file: IO[str] | None = None
        self.written = 0

    def sampled(self) -> bool:
        return self.sampling_percentage >= 100 or random.uniform(0, 100) < self.sampling_percentage

    def write(
        self,
        request: bytes,
        request_type: str,
        response: bytes,
        response_type: str,
        inference_id: str | None = None,
        model_version: int | None = None,
    ) -> None:
        now = datetime.now(UTC)
        record = {
            "captureData": {
                "endpointInput": _payload(request, request_type, "INPUT"),
                "endpointOutput": _payload(response, response_type, "OUTPUT"),
            },
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                **({"inferenceId": inference_id} if inference_id else {}),
                **({"modelVersion": model_version} if model_version is not None else {}),
            },
            "eventVersion": "0",
        }
        line = json.dumps(record) + "\n"
        with self._lock:
            handle = self._file_for(now)
            handle.write(line)
            handle.flush()
            self.written += 1

    def _file_for(self, now: datetime) -> IO[str]:
        hour = now.strftime("%Y/%m/%d/%H")
        if self._file is None or hour != self._hour:
            if self._file is not None:
                self._file.close()
            folder = self.folder / hour
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{now.strftime('%M-%S-%f')[:-3]}-{uuid.uuid4()}.jsonl"
            self._file = (folder / name).open("a", encoding="utf-8")
            self._hour = hour
        return self._file

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
