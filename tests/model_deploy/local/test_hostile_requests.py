"""Hostile and malformed requests over raw sockets: every one gets a 4xx JSON answer, and the server serves on.

The cases an outside tester found in the first local endpoint (5xx for odd bodies, 501 HTML pages for other
methods, no status line for garbage, a 60 s hang on a short body), then a bounded, seeded fuzz run of mutated
requests against both the hosting contract and the runtime API.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_deploy.local.server import RunningServer, adhoc_state, start_in_thread
from tests.model_deploy.local.conftest import read_until_closed

NAME = "review-sentiment-dev-version-1"
RUNTIME = f"/endpoints/{NAME}/invocations"


@pytest.fixture(scope="module")
def server(model_archive: Path) -> Iterator[RunningServer]:
    state = adhoc_state(model_archive, NAME, 1)
    state.body_timeout_seconds = 3
    running = start_in_thread(state)
    yield running
    running.stop()


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def exchange(server: RunningServer, raw: bytes, timeout: float = 60) -> bytes:
    """Send ``raw``, read until the server closes; the tests' requests say ``Connection: close``."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=timeout) as sock:
        sock.sendall(raw)
        return read_until_closed(sock)


def http_request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def json_body_of(answer: bytes) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return json.loads(body)


def assert_still_serving(server: RunningServer) -> None:
    body = json.dumps({"features": ["Still here?"]}).encode()
    answer = exchange(server, http_request("POST", "/invocations", body, Content_Type="application/json"))
    assert status_of(answer) == 200


HOSTILE_BODIES = {
    "5000-digit number": (b'{"features": [' + b"9" * 5000 + b"]}", "application/json"),
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "lone surrogate": (b'{"features": ["fits \\ud800 well"]}', "application/json"),
    "CSV field over the review limit": (b"y" * 1_100_000, "text/csv"),
    "invalid UTF-8": (b'{"features": ["\xff\xfe"]}', "application/json"),
    "NaN and objects": (b'{"features": [NaN, {"a": 1}]}', "application/json"),
    "JSON lines with garbage": (b'{"features": "ok"}\n{not json}\n', "application/jsonlines"),
    "null body document": (b"null", "application/json"),
    "both keys": (b'{"features": ["a"], "inputs": ["b"]}', "application/json"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
@pytest.mark.parametrize("path", ["/invocations", RUNTIME])
def test_hostile_bodies_get_4xx_json(server: RunningServer, case: str, path: str) -> None:
    body, content_type = HOSTILE_BODIES[case]
    answer = exchange(server, http_request("POST", path, body, Content_Type=content_type))
    status = status_of(answer)
    document = json_body_of(answer)
    if path == RUNTIME:  # the handler's 4xx, wrapped as SageMaker's runtime wraps it
        assert (status, document["OriginalStatusCode"] // 100) == (424, 4), document
    else:
        assert 400 <= status < 500 and document["error"], document
    assert_still_serving(server)


@pytest.mark.parametrize("path", ["/invocations", RUNTIME])
def test_a_csv_field_over_the_csv_modules_128_kb_default_is_one_long_review(
    server: RunningServer, path: str
) -> None:
    body = (
        b'"' + b"long review " * 20_000 + b'"\n'
    )  # 240 KB in one field: read, then truncated by the tokenizer
    answer = exchange(server, http_request("POST", path, body, Content_Type="text/csv"))
    assert status_of(answer) == 200
    assert len(json_body_of(answer)) == 1


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"])
def test_other_methods_get_405_with_a_status_line(server: RunningServer, method: str) -> None:
    for path in ("/invocations", "/ping", RUNTIME):
        if method == "HEAD" and path == "/ping":
            continue  # HEAD is GET without the body: a 200 there is right
        answer = exchange(server, http_request(method, path if method != "CONNECT" else "127.0.0.1:1"))
        status = status_of(answer)
        assert 400 <= status < 500, (method, path, answer[:200])
        if method != "HEAD":
            assert json_body_of(answer)
    assert_still_serving(server)


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 preface
        b"POST /invocations HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",
    ],
    ids=["garbage", "tls", "http2-preface", "bad-version", "bad-header", "negative-length", "two-lengths",
         "long-path", "huge-header"],
)  # fmt: skip
def test_unreadable_http_gets_a_status_line_and_never_a_5xx(server: RunningServer, raw: bytes) -> None:
    """What h11 cannot parse is a JSON 400 and a close; what it can (an odd version, a long header) is served."""
    answer = exchange(server, raw)
    assert status_of(answer) < 500, answer[:300]
    if raw.startswith((b"GARBAGE", b"\x16")):
        assert status_of(answer) == 400 and "error" in json_body_of(answer)
    if status_of(answer) >= 400:
        assert json_body_of(answer)
    assert_still_serving(server)


@pytest.mark.parametrize("path", ["/invocations", RUNTIME])
def test_a_stalled_body_is_answered_promptly_not_held(server: RunningServer, path: str) -> None:
    start = time.monotonic()
    raw = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\nonly this"
    )
    answer = exchange(server, raw.encode())
    assert status_of(answer) == 408
    assert time.monotonic() - start < 30  # the server's 3 s body timeout, with room for a loaded machine
    assert_still_serving(server)


def test_a_seeded_fuzz_run_never_gets_a_5xx(server: RunningServer) -> None:
    """300 mutated requests: random methods, paths, headers, content types and bodies (bounded, seeded)."""
    rng = random.Random(16)
    seeds = [body for body, _ in HOSTILE_BODIES.values()] + [
        b'{"features": ["I love it"]}',
        b"Great fit\nAwful\n",
        b'["a", "b"]',
        b"",
    ]
    content_types = ["application/json", "text/csv", "application/jsonlines", "text/plain", "", "*/*", "\x7f"]
    accepts = ["application/json", "application/jsonlines", "text/csv", "*/*", "", "garbage/;;;"]
    statuses: dict[int, int] = {}
    for _ in range(300):
        body = bytearray(rng.choice(seeds)[:5000])
        for _ in range(rng.randint(0, 5)):  # flip, insert or delete a few bytes
            if body and rng.random() < 0.5:
                body[rng.randrange(len(body))] = rng.randrange(256)
            else:
                body.insert(rng.randint(0, len(body)), rng.randrange(256))
        path = rng.choice(
            ["/invocations", RUNTIME, "/endpoints/other/invocations", "/ping", f"/endpoints/{NAME}/ping"]
        )
        method = rng.choice(["POST"] * 6 + ["GET", "PUT", "DELETE"])
        headers = {"Content_Type": rng.choice(content_types), "Accept": rng.choice(accepts)}
        if rng.random() < 0.2:
            headers["X_Amzn_SageMaker_Custom_Attributes"] = "x" * rng.choice([10, 2000])
        if rng.random() < 0.2:
            headers["X_Amzn_SageMaker_Target_Variant"] = rng.choice(["AllTraffic", "Candidate", "Nope"])
        answer = exchange(server, http_request(method, path, bytes(body), **headers))
        status = status_of(answer)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (method, path, headers, bytes(body)[:200], answer[:500])
    assert set(statuses) - {200} and 200 in statuses, statuses  # the run exercised both answers
    assert_still_serving(server)
