"""The local endpoint against a course-style stdlib server: 1 and 16 clients, and a hostile request.

The bundled MiniLM, labelled as training saves it and packaged as the evaluation step packages a model (the
repository's handler in ``code/``, the int8 ONNX export beside the weights), is served by two processes of their
own on 127.0.0.1, both up for the whole run:

1. **the course's server** (the baseline, ``python -m bench.endpoint_load --course ARCHIVE``): a stdlib
   ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, TCP_NODELAY) whose handler runs one forward pass per request
   (tokenize the request's reviews, ``model(**batch)``, softmax), one at a time under a lock (a fast
   tokenizer refuses concurrent use), with ``transformers`` and the same saved PyTorch model;
2. **the template** (``--serve ARCHIVE``): the local endpoint server with the stage config's batching and
   backend (``auto``: the int8 model with ONNX Runtime on a CPU), the runtime API path
   (``/endpoints/NAME/invocations``).

Both get the same ``OMP_WAIT_POLICY`` (the handler's PASSIVE), so the comparison is of the servers, not of
OpenMP's settings. Load: closed-loop clients (threads of this process) on keep-alive connections, one review
of the sample per request; rounds of 16 clients then 1 client, the two servers taking turns (the first to go
alternates), so that other work on the machine's shared cores weighs on both alike. Then a hostile round per
server: a lone one-review client's p99 alone, then while another client keeps sending a 5.8 MB request of 64
reviews of 90,000 characters each. Also measured, in a process of its own: the handler's own rate with no server
(batches of 1 and of 16) with each backend, the most any server could reach.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TITLE = "Local endpoint vs a course-style stdlib server: 1 and 16 clients, a hostile request"
ENDPOINT = "bench-endpoint"
CLIENTS = 16
HOSTILE_BODY = json.dumps({"features": ["ok " * 30_000] * 64})
"""5.8 MB: under SageMaker's 6 MB, as many reviews as the handler takes, each far past the 128-token cut."""
SERVER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}


def _reviews(limit: int = 2000) -> list[str]:
    with (REPO_ROOT / "data" / "reviews_sample.csv").open(newline="", encoding="utf-8") as handle:
        texts = [row["Review Text"] for row in csv.DictReader(handle) if row["Review Text"].strip()]
    return texts[:limit]


def _archive(folder: Path) -> Path:
    """The bundled MiniLM as the pipeline packages a model: id2label set, handler in ``code/``, int8 ONNX model."""
    import shutil

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model_build.pipeline_spec import SERVING_SOURCE_DIR
    from model_build.steps.features import SENTIMENT_BY_LABEL_ID
    from model_build.steps.onnx_int8 import export_int8
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
    export_int8(
        model, tokenizer, model_dir
    )  # as the evaluation step packages it (no parity check: see below)
    (model_dir / "code").mkdir()
    for module in (REPO_ROOT / SERVING_SOURCE_DIR).glob("*.py"):  # as training copies them
        if module.name != "__init__.py":
            shutil.copy2(module, model_dir / "code" / module.name)
    archive = folder / "model.tar.gz"
    pack_model(model_dir, archive)
    shutil.rmtree(model_dir)
    return archive


# ------------------------------------------------------------------------------------------------- ceiling
def _ceiling(archive: Path, seconds: float, backend: str) -> dict[str, float]:
    """Texts/s of the handler's ``predict_fn`` with no server, in a process of its own (``--ceiling``, with the
    servers' environment: in this one, torch may have loaded OpenMP with other settings already)."""
    command = [
        sys.executable,
        "-m",
        "bench.endpoint_load",
        "--ceiling",
        str(archive),
        "--seconds",
        str(seconds),
        "--backend",
        backend,
    ]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **SERVER_ENVIRONMENT},
        capture_output=True,
        text=True,
        check=True,
    )
    rates: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates


def measure_ceiling(archive: Path, seconds: float, backend: str) -> None:
    """The ``--ceiling`` child: one review at a time, and in batches of 16; prints the rates as JSON."""
    from model_deploy.local.host import load
    from model_deploy.stage_config import ServingSettings

    reviews = _reviews()

    host = load(archive, Path(tempfile.mkdtemp(prefix="bench-ceiling-")), ServingSettings(backend=backend))  # type: ignore[arg-type]
    try:
        rates = {}
        for batch in (1, CLIENTS):
            done, index, started = 0, 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                chunk = [reviews[(index + n) % len(reviews)] for n in range(batch)]
                host.handler.predict_fn(chunk, host.model)
                done, index = done + batch, index + batch
            rates[f"batch {batch}"] = done / (time.perf_counter() - started)
        print(json.dumps(rates), flush=True)
    finally:
        host.close()


# ------------------------------------------------------------------------------------------------- the servers
def serve(archive: Path) -> None:
    """The template's child process: one endpoint on a free port; prints its URL, serves until stdin closes."""
    from model_deploy.local.server import adhoc_state, start_in_thread
    from model_deploy.stage_config import load_stage

    state = adhoc_state(archive, ENDPOINT, 1)
    host = state.endpoints[ENDPOINT].current
    assert host is not None
    host.settings = load_stage("prod").serving
    running = start_in_thread(state)
    print(running.url, flush=True)
    sys.stdin.read()
    print(json.dumps(vars(host.stats)), flush=True)
    running.stop()


def serve_course(archive: Path) -> None:
    """The course's child process: a stdlib threading server, one forward pass per request."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model_deploy.local.host import unpack

    model_dir = unpack(archive, Path(tempfile.mkdtemp(prefix="bench-course-")))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    labels = [int(model.config.id2label[index]) for index in range(model.config.num_labels)]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            reviews = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["features"]
            with lock, torch.inference_mode():
                batch = tokenizer(reviews, truncation=True, max_length=128, padding=True, return_tensors="pt")
                probabilities = torch.softmax(model(**batch).logits, dim=-1).tolist()
            body = json.dumps(
                [
                    {"predicted_label": labels[row.index(max(row))], "probability": max(row)}
                    for row in probabilities
                ]
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, Any]:
            connection, address = super().get_request()
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return connection, address

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    print("{}", flush=True)
    server.shutdown()


class _Server:
    """A child process serving ``archive`` (``--serve`` or ``--course``), and the path its clients post to."""

    def __init__(self, archive: Path, course: bool) -> None:
        command = [
            sys.executable,
            "-m",
            "bench.endpoint_load",
            "--course" if course else "--serve",
            str(archive),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **SERVER_ENVIRONMENT},
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(f"the bench server did not start (it printed {self.url!r})")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.path = "/invocations" if course else f"/endpoints/{ENDPOINT}/invocations"

    def stop(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        stats = json.loads(self.process.stdout.readline() or "{}")
        self.process.wait(timeout=120)
        return stats


# ------------------------------------------------------------------------------------------------- load
def _post(connection: http.client.HTTPConnection, path: str, body: str) -> None:
    connection.request("POST", path, body, {"Content-Type": "application/json", "Accept": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}")


def _load(
    server: _Server, reviews: list[str], clients: int, seconds: float, hostile: bool = False
) -> dict[str, float]:
    """Closed-loop clients for ``seconds``: each sends one review, waits for the answer, sends the next; with
    ``hostile``, one more client sends :data:`HOSTILE_BODY` again and again (not counted)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        index, mine = offset, []
        while time.perf_counter() < deadline:
            body = json.dumps({"features": [reviews[index % len(reviews)]]})
            index += clients
            started = time.perf_counter()
            try:
                _post(connection, server.path, body)
                mine.append(time.perf_counter() - started)
            except Exception as error:
                with lock:
                    errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        connection.close()
        with lock:
            latencies.extend(mine)

    hostile_done = [0]

    def attacker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        while time.perf_counter() < deadline:
            _post(connection, server.path, HOSTILE_BODY)
            hostile_done[0] += 1
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    if hostile:
        threads.append(threading.Thread(target=attacker))
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
        "hostile": hostile_done[0],
    }


def _merged(results: list[dict[str, float]]) -> dict[str, float]:
    """Rounds of one kind together: the median of each figure, the sums of the counts."""
    merged = {key: statistics.median(result[key] for result in results) for key in results[0]}
    for key in ("requests", "errors", "hostile"):
        merged[key] = sum(result[key] for result in results)
    return merged


SIDES = ("course", "template")


def run(quick: bool) -> str:
    # This process loads torch too (the archive's packing); the servers' setting, as the handler sets it, so a
    # benchmark run after this one in the same process (batch scoring) gets it as well.
    os.environ.setdefault("OMP_WAIT_POLICY", SERVER_ENVIRONMENT["OMP_WAIT_POLICY"])
    seconds, rounds, hostile_seconds = (5.0, 1, 10.0) if quick else (20.0, 3, 30.0)
    reviews = _reviews()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as folder:
        archive = _archive(Path(folder))
        ceilings = {
            backend: _ceiling(archive, 5.0 if quick else 10.0, backend) for backend in ("pytorch", "onnx")
        }
        servers = {side: _Server(archive, course=side == "course") for side in SIDES}
        measured: dict[str, dict[str, list[dict[str, float]]]] = {
            side: {"many": [], "one": [], "quiet": [], "hostile": []} for side in SIDES
        }
        try:
            for server in servers.values():
                _load(server, reviews, 2, 2.0)  # warm-up: first calls allocate
            for index in range(rounds):
                for side in SIDES if index % 2 == 0 else SIDES[::-1]:
                    measured[side]["many"].append(_load(servers[side], reviews, CLIENTS, seconds))
                    measured[side]["one"].append(_load(servers[side], reviews, 1, seconds / 2))
                    print(f"round {index + 1}/{rounds} {side}: {measured[side]['many'][-1]}", flush=True)
            for side in SIDES[::-1]:
                measured[side]["quiet"].append(_load(servers[side], reviews, 1, hostile_seconds / 2))
                measured[side]["hostile"].append(
                    _load(servers[side], reviews, 1, hostile_seconds, hostile=True)
                )
                print(f"hostile {side}: {measured[side]['hostile'][-1]}", flush=True)
        finally:
            stats = {side: server.stop() for side, server in servers.items()}
    results = {
        side: {kind: _merged(runs) for kind, runs in kinds.items()} for side, kinds in measured.items()
    }
    return _report(results, stats["template"], ceilings, seconds, rounds, hostile_seconds, load_before)


def _report(
    results: dict[str, dict[str, dict[str, float]]],
    stats: dict[str, Any],
    ceilings: dict[str, dict[str, float]],
    seconds: float,
    rounds: int,
    hostile_seconds: float,
    load_before: float,
) -> str:
    course, ours = results["course"], results["template"]
    names = {"course": "course-style stdlib server (baseline)", "template": "the template's endpoint server"}
    rows = []
    for side, result in results.items():
        many, one = result["many"], result["one"]
        rows.append(
            f"| {names[side]} | {many['rps']:.1f} | {many['p50']:.0f} | {many['p99']:.0f} | "
            f"{many['p99'] / (CLIENTS / many['rps'] * 1000):.2f} | {one['rps']:.1f} | {one['p50']:.1f} | "
            f"{one['p99']:.1f} | {many['errors'] + one['errors']} |"
        )
    hostile_rows = [
        f"| {names[side]} | {result['quiet']['p99']:.0f} | {result['hostile']['p99']:.0f} | "
        f"{result['hostile']['p99'] / result['quiet']['p99']:.1f}x | {result['hostile']['rps']:.1f} | "
        f"{int(result['hostile']['hostile'])} |"
        for side, result in results.items()
    ]
    many_ratio = ours["many"]["rps"] / course["many"]["rps"]
    one_ratio = ours["one"]["rps"] / course["one"]["rps"]
    p99_ratio = ours["many"]["p99"] / (CLIENTS / ours["many"]["rps"] * 1000)
    hostile_ratio = ours["hostile"]["p99"] / ours["quiet"]["p99"]
    calls = stats.get("model_calls") or 1
    ceiling, torch_ceiling = ceilings["onnx"], ceilings["pytorch"]

    def verdict(met: bool) -> str:
        return "met" if met else "**not met**"

    return f"""
Bundled MiniLM (max 128 tokens), packaged as the pipeline packages a model: the course's server runs its PyTorch
model (as the course did), the template's server the package's int8 ONNX model with ONNX Runtime (the handler's
`auto` backend on a CPU), each server a process of its own; one review of the sample per request, closed-loop
clients on keep-alive connections. {rounds} rounds of {CLIENTS} clients for {seconds:.0f} s then 1 client for
{seconds / 2:.0f} s, the servers taking turns; medians over the rounds. One-minute load average before the run:
{load_before:.1f}, after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs shared with other work (numbers move
with it; both sides saw the same). The bench model's classifier head is untrained: this measures speed only; the
int8 model's accuracy is the evaluation step's parity check (`evaluation.json` `onnx_int8`).

Ceiling, the handler in-process with no server, texts/s one at a time / in batches of {CLIENTS}: int8 ONNX
**{ceiling["batch 1"]:.1f} / {ceiling[f"batch {CLIENTS}"]:.1f}**, PyTorch {torch_ceiling["batch 1"]:.1f} /
{torch_ceiling[f"batch {CLIENTS}"]:.1f} (int8 / PyTorch: {ceiling["batch 1"] / torch_ceiling["batch 1"]:.2f}x,
{ceiling[f"batch {CLIENTS}"] / torch_ceiling[f"batch {CLIENTS}"]:.2f}x).

| server | req/s ({CLIENTS} clients) | p50 ms | p99 ms | p99 / ({CLIENTS} / throughput) | req/s (1 client) | p50 ms (1 client) | p99 ms (1 client) | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

| target | measured | |
|---|---|---|
| {CLIENTS} clients: at least 3x the course's req/s | **{many_ratio:.2f}x** ({ours["many"]["rps"]:.1f} vs {course["many"]["rps"]:.1f}) | {verdict(many_ratio >= 3)} |
| {CLIENTS} clients: p99 within 2x of {CLIENTS} / throughput | {p99_ratio:.2f}x | {verdict(p99_ratio <= 2)} |
| 1 client: at least 1.5x the course's req/s | **{one_ratio:.2f}x** ({ours["one"]["rps"]:.1f} vs {course["one"]["rps"]:.1f}) | {verdict(one_ratio >= 1.5)} |
| a hostile 5.8 MB request: a lone client's p99 under 3x its quiet p99 | {hostile_ratio:.1f}x | {verdict(hostile_ratio < 3)} |

The template batched {stats.get("requests", 0) / calls:.1f} requests per model call on average over the run.
At {CLIENTS} clients it reached {ours["many"]["rps"] / ceiling[f"batch {CLIENTS}"]:.0%} of the model's batched
ceiling, which is {ceiling[f"batch {CLIENTS}"] / course["many"]["rps"]:.2f}x the course's req/s (the ceilings are
measured once, before the rounds, not in turns: on shared cores they are a rough guide).

Hostile round, per server: a lone one-review client for {hostile_seconds / 2:.0f} s alone, then for
{hostile_seconds:.0f} s while another client sends `{{"features": ["ok " * 30000] * 64}}` (5.8 MB) again and
again.

| server | quiet p99 ms | p99 ms beside the hostile client | ratio | lone req/s beside it | hostile requests answered |
|---|---:|---:|---:|---:|---:|
{chr(10).join(hostile_rows)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve an archive for the endpoint load benchmark.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--serve", type=Path, help="the template's endpoint server")
    group.add_argument("--course", type=Path, help="the course-style stdlib server")
    group.add_argument("--ceiling", type=Path, help="the model's own rate, no server")
    parser.add_argument("--seconds", type=float, default=10.0, help="with --ceiling: per batch size")
    parser.add_argument(
        "--backend", choices=("auto", "onnx", "pytorch"), default="auto", help="with --ceiling: the handler's"
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    elif args.course:
        serve_course(args.course)
    else:
        measure_ceiling(args.ceiling, args.seconds, args.backend)


if __name__ == "__main__":
    main()
