"""Local endpoint throughput and latency under load: batching server vs one model call per request.

The bundled MiniLM, labelled as training saves it, packed with the repository's handler into a
``model.tar.gz``, is served three ways, each in a fresh server process on 127.0.0.1 (``python -m
bench.endpoint_load --serve``):

1. **ceiling**: no server at all, the model's own forward rate in-process, one review at a time and in batches
   of 16 (the most any server could reach with this model on this machine);
2. **the course's serving path** (the baseline): one model call per request, each review padded to the max
   length (the course's handler tokenizes with ``encode_plus(..., pad_to_max_length=True)``), no batching;
3. **one call per request, the template's handler**: the same server with batching off (``max_batch_size=1``)
   and the template's handler (no padding for a single review): what the handler alone gains;
4. **batching** (the template): the stage config's ``max_batch_size`` / ``max_batch_delay_ms``.

Load: closed-loop clients on keep-alive connections (threads of this process), one review of the sample per
request through the runtime API, for 30 s at 16 clients (``--quick``: 5 s), then 1 client. Reported: requests/s,
p50/p99/mean latency, errors. With 16 clients always waiting, mean latency is 16 / throughput; the target is
p99 within 2x of that, at least 2x the baseline's throughput, zero errors, and a lone client no slower than
on the baseline.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TITLE = "Local endpoint under load: batching vs one model call per request"
ENDPOINT = "bench-endpoint"
CLIENTS = 16


def _reviews(limit: int = 2000) -> list[str]:
    with (REPO_ROOT / "data" / "reviews_sample.csv").open(newline="", encoding="utf-8") as handle:
        texts = [row["Review Text"] for row in csv.DictReader(handle) if row["Review Text"].strip()]
    return texts[:limit]


COURSE_PREDICT_FN = """

ELEMENTWISE_PREDICT = False


def predict_fn(reviews, model):
    # The course's handler: every review padded to the max length, one model call per request.
    encoded = model.tokenizer(
        reviews, truncation=True, max_length=model.max_length, padding="max_length", return_tensors="pt"
    ).to(model.device)
    with torch.inference_mode():
        probabilities = torch.softmax(model.model(**encoded).logits.float(), dim=-1).cpu().tolist()
    return [_result(row, model.sentiments) for row in probabilities]
"""


def _archive(folder: Path, extra_handler_source: str = "") -> Path:
    """The bundled MiniLM as a trained model's ``model.tar.gz``: id2label set, handler in ``code/``."""
    import shutil

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model_build.pipeline_spec import SERVING_SOURCE_DIR
    from model_build.steps.features import SENTIMENT_BY_LABEL_ID
    from pipelines.local.container import pack_model
    from pipelines.models import bundled_model_dir

    id2label = {label: str(sentiment) for label, sentiment in SENTIMENT_BY_LABEL_ID.items()}
    model = AutoModelForSequenceClassification.from_pretrained(
        bundled_model_dir(), num_labels=3, id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    tokenizer.model_max_length = 128
    model_dir = folder / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / "code").mkdir()
    for module in (REPO_ROOT / SERVING_SOURCE_DIR).glob("*.py"):  # as training copies them
        if module.name != "__init__.py":
            shutil.copy2(module, model_dir / "code" / module.name)
    handler = (REPO_ROOT / SERVING_SOURCE_DIR / "inference.py").read_text()
    (model_dir / "code" / "inference.py").write_text(handler + extra_handler_source)
    archive = folder / ("course-model.tar.gz" if extra_handler_source else "model.tar.gz")
    pack_model(model_dir, archive)
    shutil.rmtree(model_dir)
    return archive


# ------------------------------------------------------------------------------------------------- ceiling
def _ceiling(archive: Path, reviews: list[str], seconds: float) -> dict[str, float]:
    """Texts/s of the handler's ``predict_fn`` in this process: one at a time, and in batches of 16."""
    from model_deploy.local.host import load

    host = load(archive, Path(tempfile.mkdtemp(prefix="bench-ceiling-")))
    try:
        rates = {}
        for batch in (1, CLIENTS):
            done, index, started = 0, 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                chunk = [reviews[(index + n) % len(reviews)] for n in range(batch)]
                host.handler.predict_fn(chunk, host.model)
                done, index = done + batch, index + batch
            rates[f"batch {batch}"] = done / (time.perf_counter() - started)
        return rates
    finally:
        host.close()


# ------------------------------------------------------------------------------------------------- a server
def serve(archive: Path, max_batch_size: int, max_batch_delay_ms: int) -> None:
    """The child process: one endpoint on a free port; prints its URL, serves until stdin closes."""
    from model_deploy.local.server import adhoc_state, start_in_thread
    from model_deploy.stage_config import ServingSettings

    state = adhoc_state(archive, ENDPOINT, 1)
    host = state.endpoints[ENDPOINT].current
    assert host is not None
    host.settings = ServingSettings(max_batch_size=max_batch_size, max_batch_delay_ms=max_batch_delay_ms)
    running = start_in_thread(state)
    print(running.url, flush=True)
    sys.stdin.read()
    print(json.dumps(vars(host.stats)), flush=True)
    running.stop()


class _Server:
    def __init__(self, archive: Path, max_batch_size: int, max_batch_delay_ms: int) -> None:
        command = [sys.executable, "-m", "bench.endpoint_load", "--serve", str(archive)]
        command += ["--max-batch-size", str(max_batch_size), "--max-batch-delay-ms", str(max_batch_delay_ms)]
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(f"the bench server did not start (it printed {self.url!r})")
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        stats = json.loads(self.process.stdout.readline() or "{}")
        self.process.wait(timeout=120)
        return stats


# ------------------------------------------------------------------------------------------------- load
def _load(port: int, reviews: list[str], clients: int, seconds: float) -> dict[str, float]:
    """Closed-loop clients for ``seconds``: each sends one review, waits for the answer, sends the next."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        index, mine = offset, []
        while time.perf_counter() < deadline:
            body = json.dumps({"features": [reviews[index % len(reviews)]]})
            index += clients
            started = time.perf_counter()
            try:
                connection.request(
                    "POST",
                    f"/endpoints/{ENDPOINT}/invocations",
                    body,
                    {"Content-Type": "application/json", "Accept": "application/json"},
                )
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}")
                mine.append(time.perf_counter() - started)
            except Exception as error:
                with lock:
                    errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "mean": statistics.fmean(latencies) * 1000,
        "requests": len(latencies),
        "errors": len(errors),
    }


def run(quick: bool) -> str:
    from model_deploy.stage_config import load_stage

    seconds = 5.0 if quick else 30.0
    serving = load_stage("prod").serving
    reviews = _reviews()
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as folder:
        archive = _archive(Path(folder))
        course = _archive(Path(folder), COURSE_PREDICT_FN)
        ceiling = _ceiling(archive, reviews, 5.0 if quick else 15.0)
        results: dict[str, dict[str, Any]] = {}
        for label, served, size, delay in (
            ("the course's path: padded to 128, one call per request (baseline)", course, 1, 0),
            ("the template's handler, one call per request", archive, 1, 0),
            (
                f"the template: batching (max {serving.max_batch_size}, {serving.max_batch_delay_ms} ms)",
                archive,
                *_batching(serving),
            ),
        ):
            server = _Server(served, size, delay)
            try:
                _load(server.port, reviews, 2, 2.0)  # warm-up: first calls allocate
                many = _load(server.port, reviews, CLIENTS, seconds)
                one = _load(server.port, reviews, 1, seconds / 2)
            finally:
                stats = server.stop()
            results[label] = {"many": many, "one": one, "stats": stats}
    return _report(results, ceiling, seconds, os.getloadavg()[0])


def _batching(serving: Any) -> tuple[int, int]:
    return serving.max_batch_size, serving.max_batch_delay_ms


def _report(
    results: dict[str, dict[str, Any]], ceiling: dict[str, float], seconds: float, load: float
) -> str:
    base, ours = next(iter(results.values())), list(results.values())[-1]
    rows = []
    for label, result in results.items():
        many, one, stats = result["many"], result["one"], result["stats"]
        ideal = CLIENTS / many["rps"] * 1000
        calls = stats.get("model_calls") or 1
        rows.append(
            f"| {label} | {many['rps']:.1f} | {many['rps'] / base['many']['rps']:.2f}x | {many['p50']:.0f} | "
            f"{many['p99']:.0f} | {many['mean']:.0f} | {many['p99'] / ideal:.2f} | {many['errors']} | "
            f"{stats.get('requests', 0) / calls:.1f} | {one['p50']:.0f} | {one['errors']} |"
        )
    ratio = ours["many"]["rps"] / base["many"]["rps"]
    ceiling_share = ours["many"]["rps"] / ceiling[f"batch {CLIENTS}"]
    ideal = CLIENTS / ours["many"]["rps"] * 1000
    return f"""
Bundled MiniLM served by the local endpoint server (runtime API, one review per request, reviews of the sample,
max 128 tokens); {CLIENTS} closed-loop clients on keep-alive connections for {seconds:.0f} s, then 1 client for
{seconds / 2:.0f} s. Load average before the run: {load:.2f}.

Ceiling, the model in-process with no server: **{ceiling["batch 1"]:.1f} texts/s** one at a time,
**{ceiling[f"batch {CLIENTS}"]:.1f} texts/s** in batches of {CLIENTS}.

| server | requests/s ({CLIENTS} clients) | vs baseline | p50 ms | p99 ms | mean ms | p99 / ({CLIENTS} / throughput) | errors | requests per model call | p50 ms (1 client) | errors (1 client) |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

**{ratio:.2f}x** the course's one-call path at {CLIENTS} clients (target: at least 2x), {ceiling_share:.0%} of the
batched ceiling; p99 {ours["many"]["p99"]:.0f} ms against {ideal:.0f} ms for {CLIENTS} / throughput (target: within
2x); a lone client's median {ours["one"]["p50"]:.0f} ms against the baseline's {base["one"]["p50"]:.0f} ms.

The batched ceiling itself is {ceiling[f"batch {CLIENTS}"] / base["many"]["rps"]:.2f}x the baseline's throughput
in this run: no server can beat the baseline by more than that through batching, since what is left is the
model's own forward rate on these 2 cores (which the server and the {CLIENTS} clients also share with HTTP and
JSON parsing). Where the gain comes from: the template's handler sorts a batch's reviews by length and pads each
chunk of 8 to its longest only (a single review is not padded at all), and the server puts the reviews of
requests that arrive together through one forward pass, waiting only while other requests are being parsed.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve an archive for the endpoint load benchmark.")
    parser.add_argument("--serve", type=Path, required=True)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-batch-delay-ms", type=int, default=5)
    args = parser.parse_args()
    serve(args.serve, args.max_batch_size, args.max_batch_delay_ms)


if __name__ == "__main__":
    main()
