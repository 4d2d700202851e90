"""What every server we run does with its connections, over real loopback sockets.

- TCP_NODELAY on every accepted socket of the endpoint server, the page and the Feature Store stand-in (with
  Nagle's algorithm on, each keep-alive answer waited out the client's delayed ACK: ~40 ms a request);
- the request-head deadline on every request of a kept-alive connection, not only the first;
- a trailing-slash redirect names the server's own address, never the request's ``Host``;
- SageMaker's error shape (``x-amzn-ErrorType``, ``{"Message"}``) for unreadable HTTP on the runtime path;
- every refused request logged with its reason, which the ModelError's "see the log" points to.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_deploy.local import server as endpoint_server
from model_deploy.local.server import RunningServer, adhoc_state, bind, start_in_thread
from pipelines.local.feature_store import FeatureStore
from pipelines.local.feature_store_server import serve as serve_feature_store
from pipelines.local.workspace import Workspace
from pipelines.ui.server import page_server
from tests.model_deploy.local.conftest import read_until_closed, request

NAME = "review-sentiment-dev-version-1"
RUNTIME = f"/endpoints/{NAME}/invocations"
HEAD_TIMEOUT = 2.0
"""The head deadline of the server under test (the real one is 10 s), so the test need not wait that long."""


@pytest.fixture(scope="module")
def server(model_archive: Path) -> Iterator[RunningServer]:
    running = start_in_thread(adhoc_state(model_archive, NAME, 1))
    yield running
    running.stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def wait_for(condition: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


def nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def accepted_sockets_of(server: Any) -> list[socket.socket]:
    """The server side of each connection uvicorn holds (its protocols' transports)."""
    return [connection.transport.get_extra_info("socket") for connection in server.server_state.connections]


def split_answer(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


# ------------------------------------------------------------------------------------------------ TCP_NODELAY
def test_the_endpoint_server_turns_nagle_off_on_every_accepted_connection(server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server.url)), timeout=60):
        accepted = wait_for(lambda: accepted_sockets_of(server.server))
        assert [nodelay(sock) for sock in accepted] == [1] * len(accepted)


def test_the_page_server_turns_nagle_off_on_every_accepted_connection(tmp_path: Path) -> None:
    sock = bind("127.0.0.1", 0)
    page = page_server(Workspace.open(tmp_path / "run"))
    thread = threading.Thread(target=page.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: page.started)
        with socket.create_connection(sock.getsockname()[:2], timeout=60):
            accepted = wait_for(lambda: accepted_sockets_of(page))
            assert [nodelay(accepted_socket) for accepted_socket in accepted] == [1] * len(accepted)
    finally:
        page.should_exit = True
        thread.join(timeout=60)
        sock.close()


def test_the_feature_store_stand_in_turns_nagle_off_on_every_accepted_connection(tmp_path: Path) -> None:
    with (
        serve_feature_store(FeatureStore(tmp_path / "offline"), "group") as feature_store,
        socket.create_connection(feature_store.sock.getsockname()[:2], timeout=60),
    ):
        accepted = wait_for(lambda: accepted_sockets_of(feature_store.server))
        assert [nodelay(accepted_socket) for accepted_socket in accepted] == [1] * len(accepted)


# ------------------------------------------------------------------------------------------------ head deadline
def test_a_trickled_second_request_on_a_kept_alive_connection_is_closed_at_the_deadline(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoint_server, "HEADER_TIMEOUT_SECONDS", HEAD_TIMEOUT)
    first = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port_of(server.url)), timeout=60) as sock:
        sock.sendall(first)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")  # kept alive: no Connection: close
        started = time.monotonic()
        sock.sendall(f"POST {RUNTIME} HTTP/1.1\r\n".encode())
        closed = False
        while (
            time.monotonic() - started < 60
        ):  # uvicorn alone held such a connection for as long as it trickled
            try:
                sock.sendall(b"X-Trickle: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.3)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            sock.settimeout(60)
            status, headers, body = split_answer(answer + read_until_closed(sock))
            assert status == 408 and headers["x-amzn-errortype"] == "RequestTimeout", answer
            assert "no complete request head within 2 s" in json.loads(body)["Message"]
            closed = True
            break
        assert closed, "the connection was still held after 60 s of trickled header lines"
        assert time.monotonic() - started < 30  # the 2 s deadline, with room for a loaded machine


def test_pipelined_requests_on_one_connection_are_all_answered(server: RunningServer) -> None:
    """Arming the deadline again after each answer must not cut off a next request already received."""
    ping = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port_of(server.url)), timeout=60) as sock:
        sock.sendall(ping * 3 + b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_until_closed(sock).count(b"HTTP/1.1 200 OK") == 4


# ------------------------------------------------------------------------------------------------ redirects
def test_a_trailing_slash_redirect_names_the_servers_own_address_not_the_host_header(
    server: RunningServer,
) -> None:
    status, headers, _ = request(server.url, "GET", "/ping/?x=1", Host="evil.example")
    assert status == 307
    assert headers["location"] == f"{server.url}/ping?x=1"
    status, headers, _ = request(server.url, "GET", f"/endpoints/{NAME}/ping/", Host="evil.example:80")
    assert (status, headers["location"]) == (307, f"{server.url}/endpoints/{NAME}/ping")
    status, _, body = request(server.url, "GET", "/nowhere/", Host="evil.example")
    assert status == 404 and "no route GET /nowhere/" in json.loads(body)["error"]


# ------------------------------------------------------------------------------------------------ error shape
@pytest.mark.parametrize(
    "raw",
    [
        f"POST {RUNTIME} HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n".encode(),
        f"POST {RUNTIME} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".encode(),
        f"POST {RUNTIME} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".encode(),
    ],
    ids=["bad-header", "negative-length", "two-lengths"],
)
def test_unreadable_http_on_the_runtime_path_gets_sagemakers_error_shape(
    server: RunningServer, raw: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server.url)), timeout=60) as sock:
        sock.sendall(raw)
        status, headers, body = split_answer(read_until_closed(sock))
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationError"
    assert json.loads(body) == {"Message": "Invalid HTTP request received. Send an HTTP/1.1 request."}


def test_unreadable_http_elsewhere_keeps_the_hosting_contracts_shape(server: RunningServer) -> None:
    for raw, expected in (
        (b"POST /invocations HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", {"error"}),
        (b"GARBAGE\r\n\r\n", {"error", "Message"}),  # no path to tell which client sent it: both shapes
    ):
        with socket.create_connection(("127.0.0.1", port_of(server.url)), timeout=60) as sock:
            sock.sendall(raw)
            status, headers, body = split_answer(read_until_closed(sock))
        assert status == 400 and set(json.loads(body)) == expected
        assert ("x-amzn-errortype" in headers) == ("Message" in expected)


# ------------------------------------------------------------------------------------------------ the log
def test_every_refusal_is_logged_with_the_reason_the_client_got(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=endpoint_server.__name__)
    status, _, body = request(
        server.url, "POST", RUNTIME, b'{"features": [7]}', Content_Type="application/json"
    )
    message = json.loads(body)["Message"]
    assert status == 424 and "See the endpoint server's log" in message
    status, _, _ = request(server.url, "POST", "/endpoints/nobody/invocations", b"{}")
    assert status == 400
    with socket.create_connection(("127.0.0.1", port_of(server.url)), timeout=60) as sock:
        sock.sendall(f"POST {RUNTIME} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".encode())
        read_until_closed(sock)
    wait_for(lambda: len(caplog.records) >= 3)
    logged = [r.getMessage() for r in caplog.records if r.name == endpoint_server.__name__]
    assert any(
        line.startswith("424 ModelError") and "[0] is a number, not a string" in line for line in logged
    )
    assert any("Endpoint nobody of account" in line for line in logged), logged
    assert any(line.startswith(f"400 {RUNTIME}: Invalid HTTP request") for line in logged), logged
