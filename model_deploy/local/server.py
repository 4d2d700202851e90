"""The local endpoint server: SageMaker's runtime API and hosting contract on 127.0.0.1, for every endpoint.

One Starlette app on uvicorn hosts every local endpoint (``<project>-<env>-staging``, ``-prod``). The module is
over 600 lines because the routes, the batching that makes requests take turns and the HTTP protocol that
bounds each request's head share one event loop's state; loading and running a model is
:mod:`model_deploy.local.host`'s:

- ``POST /endpoints/{name}/invocations``: ``InvokeEndpoint`` as boto3's ``sagemaker-runtime`` client calls it
  (``endpoint_url=http://127.0.0.1:PORT``): request headers ``Content-Type``, ``Accept``,
  ``X-Amzn-SageMaker-Custom-Attributes``, ``-Target-Variant``, ``-Inference-Id``; the answer carries
  ``x-Amzn-Invoked-Production-Variant``; errors are what boto3 parses (``x-amzn-ErrorType`` and a JSON body
  with ``Message``): 400 ``ValidationError`` for an unknown endpoint or one with nothing deployed, 413 for a
  body over 6 MB, 424 ``ModelError`` with ``OriginalStatusCode``/``OriginalMessage`` when the handler refuses
  the request. Invocations are captured into the local S3 folder as the stage's data capture config says.
- ``GET /endpoints/{name}/ping``, and ``GET /ping`` / ``POST /invocations`` for a server that hosts a single
  endpoint (``python -m pipelines serve VERSION``): the container's hosting contract, errors as
  ``{"error": message}`` with the handler's status.
- ``/_local/...``: the control routes the rollout uses (load a candidate version beside the serving one,
  let it take the traffic, or discard it), guarded by the token in ``server.json``.

Bad input never gets a 5xx: unreadable HTTP gets a JSON 400 and a closed connection, a body that stops before
its ``Content-Length`` a 408 after ``body_timeout_seconds``, an unknown method a JSON 405. A swap never drops a
request: each request holds the version it started on, and the old version is unloaded once its requests end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from model_deploy.local.capture import CaptureWriter
from model_deploy.local.host import ModelHost, ServingError, load
from model_deploy.local.state import (
    CANDIDATE_VARIANT,
    DEPLOYED,
    PRODUCTION_VARIANT,
    ROLLED_BACK,
    Deployment,
    EndpointRecord,
    EndpointStore,
    ServerInfo,
    now,
)
from model_deploy.stage_config import STAGES, ServingSettings, StageConfig, load_stage
from pipelines.local.workspace import LOCAL_ACCOUNT, Workspace

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 6 * 1024 * 1024
"""SageMaker real-time inference refuses request payloads over 6 MB."""
MAX_CUSTOM_ATTRIBUTES = 1024
DRAIN_LIMIT = 64 * 1024 * 1024
"""A refused body up to this size is read (and dropped) before the 413, unless the client asked to wait."""
HEADER_TIMEOUT_SECONDS = 10.0
"""A connection that has not sent a whole request head by then is answered 408 and closed."""
DEFAULT_ACCEPT = "application/json"
"""What the inference toolkit assumes when a request has no ``Accept`` (or ``*/*``)."""
TOKEN_HEADER = "X-Mlops-Token"


# ------------------------------------------------------------------------------------------------- endpoints
@dataclass(frozen=True)
class CandidatePackage:
    """The version an endpoint is trying, from the moment it starts loading until it serves or is refused."""

    version: int
    model_package_arn: str
    model_data_url: str


@dataclass
class LocalEndpoint:
    """An endpoint as the server holds it: what serves, what is being tried, and its SageMaker status."""

    record: EndpointRecord
    serving: ServingSettings
    capture: CaptureWriter | None = None
    current: ModelHost | None = None
    candidate: ModelHost | None = None
    trying: CandidatePackage | None = None
    loading: bool = False
    failure_reason: str | None = None

    @property
    def status(self) -> str:
        """``Creating``, ``InService``, ``Updating`` or ``Failed``, as ``DescribeEndpoint`` says."""
        if self.current is not None:
            return "Updating" if self.loading or self.candidate is not None else "InService"
        if self.loading or self.candidate is not None:
            return "Creating"
        return "Failed"  # nothing serves: the first version, or the one to restore, did not load

    def describe(self, base_url: str) -> dict[str, Any]:
        record = self.record
        return {
            "EndpointName": record.name,
            "Stage": record.stage,
            "EndpointStatus": self.status,
            "Url": f"{base_url}/endpoints/{record.name}",
            "Version": record.version if self.current is not None else None,
            "ModelPackageArn": record.model_package_arn if self.current is not None else None,
            "CandidateVersion": self.trying.version if self.trying else None,
            "FailureReason": self.failure_reason,
            "InFlight": (self.current.in_flight if self.current else 0),
            "History": [asdict(entry) for entry in record.history],
        }


@dataclass
class ServerState:
    workspace: Workspace | None
    token: str
    base_url: str = ""
    max_body_bytes: int = MAX_BODY_BYTES
    body_timeout_seconds: float = 10.0
    endpoints: dict[str, LocalEndpoint] = field(default_factory=dict)
    persistent: bool = True
    """False for ``serve VERSION``: one ad-hoc endpoint, nothing written to the run folder."""
    load_timeout_seconds: float = 600.0
    """A candidate that has not loaded (and answered its probe) by then is refused."""
    probe: bool = True
    """Load a candidate in a throw-away process first (:mod:`model_deploy.local.probe`), so one that crashes
    the interpreter or hangs never runs in this one."""
    startup: list[Callable[[ServerState], Any]] = field(default_factory=list)
    shutdown: list[Callable[[ServerState], Any]] = field(default_factory=list)
    restoring: asyncio.Task[None] | None = None
    _retiring: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def store(self) -> EndpointStore | None:
        return EndpointStore(self.workspace.endpoints_dir) if self.workspace and self.persistent else None

    def save(self) -> None:
        if self.store is not None:
            self.store.save({name: endpoint.record for name, endpoint in self.endpoints.items()})

    def stage_config(self, stage: str) -> StageConfig | None:
        return load_stage(stage) if stage in STAGES else None

    def new_endpoint(self, record: EndpointRecord) -> LocalEndpoint:
        config = self.stage_config(record.stage)
        capture = None
        if config is not None and self.workspace is not None and config.data_capture.sampling_percentage > 0:
            capture = CaptureWriter(
                self.workspace.data_capture_root(record.stage),
                record.name,
                PRODUCTION_VARIANT,
                config.data_capture.sampling_percentage,
            )
        endpoint = LocalEndpoint(record, config.serving if config else ServingSettings(), capture)
        self.endpoints[record.name] = endpoint
        return endpoint

    async def load_host(self, endpoint: LocalEndpoint, archive: Path, label: str) -> ModelHost:
        """Load a version in this process, within :attr:`load_timeout_seconds`; every failure a ServingError."""
        work_dir = Path(tempfile.mkdtemp(prefix=f"mlops-endpoint-{label}-"))
        loading = asyncio.ensure_future(asyncio.to_thread(load, archive, work_dir, endpoint.serving, label))
        try:
            return await asyncio.wait_for(asyncio.shield(loading), self.load_timeout_seconds)
        except TimeoutError:
            loading.add_done_callback(_close_when_loaded)  # the thread cannot be stopped: clean up after it
            raise ServingError(f"the model did not load within {self.load_timeout_seconds:g} s") from None
        except ServingError:
            raise
        except Exception as error:
            raise ServingError(f"{type(error).__name__}: {error}") from error

    async def probe_candidate(self, archive: Path) -> None:
        """Run :mod:`model_deploy.local.probe` on ``archive``; a crash, a hang or an error is a ServingError."""
        if not self.probe:
            return
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "model_deploy.local.probe",
            str(archive),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), self.load_timeout_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise ServingError(
                f"the model did not load and answer within {self.load_timeout_seconds:g} s (in a probe process)"
            ) from None
        if process.returncode != 0:
            lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
            code = process.returncode or 0
            how = f"exit code {code}" if code > 0 else f"signal {-code}"
            reason = lines[-1] if lines else "no message"
            raise ServingError(f"the model's probe process ended with {how}: {reason}")

    def retire(self, host: ModelHost) -> None:
        """Unload ``host`` once the requests it is answering are done."""

        async def retire() -> None:
            await host.drained()
            await asyncio.to_thread(host.close)

        task = asyncio.get_running_loop().create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def restore(self) -> None:
        """Serve what ``endpoints.json`` says each endpoint served when the server last stopped.

        Every endpoint is known (``Creating``) before any loads; one that fails to load says why and the
        others load all the same.
        """
        store = self.store
        if store is None or self.workspace is None:
            return
        endpoints = [self.new_endpoint(record) for record in store.load().values()]
        for endpoint in endpoints:
            endpoint.loading = (
                endpoint.record.version is not None and endpoint.record.model_data_url is not None
            )
        for endpoint in endpoints:
            record = endpoint.record
            if not endpoint.loading or record.model_data_url is None:
                continue
            try:
                archive = self.workspace.local_path(record.model_data_url)
                endpoint.current = await self.load_host(
                    endpoint, archive, f"{record.stage}-v{record.version}"
                )
            except (ServingError, ValueError) as error:
                endpoint.failure_reason = f"version {record.version} could not be loaded again: {error}"
                logger.error("%s: %s", record.name, endpoint.failure_reason)
            finally:
                endpoint.loading = False

    async def close(self) -> None:
        if self.restoring is not None:
            self.restoring.cancel()
            await asyncio.gather(self.restoring, return_exceptions=True)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for endpoint in self.endpoints.values():
            for host in (endpoint.current, endpoint.candidate):
                if host is not None:
                    await asyncio.to_thread(host.close)
            if endpoint.capture is not None:
                endpoint.capture.close()


# ------------------------------------------------------------------------------------------------- responses
def _close_when_loaded(loading: asyncio.Future[ModelHost]) -> None:
    if not loading.cancelled() and loading.exception() is None:
        loading.result().close()


def error_body(status: int, message: str, close: bool = False) -> Response:
    """The hosting contract's error: ``{"error": message}``; its reason goes to the server's log too."""
    _log_refusal(status, message)
    return JSONResponse({"error": message}, status, headers={"Connection": "close"} if close else None)


def aws_error(status: int, code: str, message: str, close: bool = False, **fields: Any) -> Response:
    """An error as SageMaker's runtime sends it: boto3 reads the code from ``x-amzn-ErrorType``; its reason
    goes to the server's log too."""
    _log_refusal(status, f"{code}: {message}")
    headers = {"x-amzn-ErrorType": code, **({"Connection": "close"} if close else {})}
    return JSONResponse({"Message": message, **fields}, status, headers=headers)


def _log_refusal(status: int, message: str) -> None:
    """Every refused request is one line of the server's log (``endpoints/server.log`` for the run folder's
    server), with the reason its client got: an answer that says "see the log" finds it there."""
    logger.log(logging.ERROR if status >= 500 else logging.WARNING, "%d %s", status, message)


def _is_runtime_path(path: str) -> bool:
    return path.startswith("/endpoints/")


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's 404 and 405 (and any other HTTPException) in the shape the path's clients read."""
    assert isinstance(error, HTTPException)
    message = {
        404: f"no route {request.method} {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(error.status_code, str(error.detail))
    close = request.method not in ("GET", "HEAD")  # a body may be left unread on the connection
    if _is_runtime_path(request.url.path):
        code = "UnknownOperationException" if error.status_code in (404, 405) else "ValidationError"
        response = aws_error(error.status_code, code, message, close)
    else:
        response = error_body(error.status_code, message, close)
    if error.headers:
        response.headers.update(error.headers)
    return response


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


async def read_body(request: Request, state: ServerState) -> bytes:
    """The request body, refused before it is read when it is too large, and given up on when it stalls."""
    limit = state.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:
        if "100-continue" not in request.headers.get("expect", "").lower() and int(declared) <= DRAIN_LIMIT:
            await _drain(
                request, state.body_timeout_seconds
            )  # so the client, still sending, reads our answer
        raise BodyError(
            413,
            f"the body is {declared} bytes; at most {limit} ({limit / 2**20:g} MB, SageMaker's real-time payload "
            "limit): split the request",
        )

    async def receive() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyError(413, f"the body is over {limit} bytes; split the request")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(receive(), state.body_timeout_seconds)
    except TimeoutError:
        raise BodyError(
            408,
            f"the body did not arrive within {state.body_timeout_seconds:g} s (shorter than its Content-Length?)",
        ) from None
    except ClientDisconnect:
        raise BodyError(400, "the client closed the connection before sending the whole body") from None


async def _drain(request: Request, timeout: float) -> None:
    """Read and drop a refused body (bounded in size and time): a client that sends its body without waiting
    for ``100 Continue`` (boto3) would otherwise see the connection reset before it reads the 413."""
    with contextlib.suppress(TimeoutError, ClientDisconnect):
        async with asyncio.timeout(timeout):
            async for _ in request.stream():
                pass


def _handler_status(error: Exception) -> int | None:
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) and 400 <= status < 500 else None


def _handler_message(error: Exception) -> str:
    return str(getattr(error, "message", None) or error)


# ------------------------------------------------------------------------------------------------- routes
def _state(request: Request) -> ServerState:
    return request.app.state.server


async def ping(request: Request) -> Response:
    return Response(status_code=200)


async def endpoint_ping(request: Request) -> Response:
    endpoint = _state(request).endpoints.get(request.path_params["name"])
    if endpoint is None:
        return error_body(404, f"no endpoint {request.path_params['name']}")
    if endpoint.current is None or not endpoint.current.alive():
        return error_body(503, f"{endpoint.record.name} is {endpoint.status}: no model is serving")
    return Response(status_code=200, headers=_backend_header(endpoint.current.model))


def _backend_header(model: Any) -> dict[str, str]:
    """``x-model-backend: onnx-int8`` (or ``pytorch``): what answers, for a handler whose model says it."""
    backend = getattr(model, "backend", None)
    return {"x-model-backend": backend} if isinstance(backend, str) else {}


async def invocations(request: Request) -> Response:
    """The hosting contract's ``/invocations``, for a server with one endpoint."""
    state = _state(request)
    serving = [endpoint for endpoint in state.endpoints.values() if endpoint.current is not None]
    if len(state.endpoints) != 1 or not serving:
        names = ", ".join(state.endpoints) or "none yet"
        return error_body(
            404,
            f"this server hosts several endpoints ({names}): POST /endpoints/<name>/invocations",
            close=True,
        )
    host = serving[0].current
    assert host is not None
    try:
        body = await read_body(request, state)
    except BodyError as error:
        return error_body(error.status, error.message, close=True)
    try:
        response, content_type = await host.invoke(
            body, request.headers.get("content-type", ""), _accept(request)
        )
    except Exception as error:  # every failure becomes an answer; the server stays up
        status = _handler_status(error)
        if status is None:
            logger.exception("invocation failed")
            return error_body(500, f"{type(error).__name__}: {error}")
        return error_body(status, _handler_message(error))
    return Response(response, 200, media_type=None, headers={"Content-Type": content_type})


def _accept(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return accept if accept and accept != "*/*" else DEFAULT_ACCEPT


async def invoke_endpoint(request: Request) -> Response:
    """``InvokeEndpoint``: the runtime API, errors as boto3 parses them."""
    state = _state(request)
    name = request.path_params["name"]
    endpoint = state.endpoints.get(name)
    if endpoint is None:
        return aws_error(
            400, "ValidationError", f"Endpoint {name} of account {LOCAL_ACCOUNT} not found.", close=True
        )
    attributes = request.headers.get("x-amzn-sagemaker-custom-attributes", "")
    if len(attributes) > MAX_CUSTOM_ATTRIBUTES:
        return aws_error(
            400,
            "ValidationError",
            f"X-Amzn-SageMaker-Custom-Attributes is {len(attributes)} characters; at most {MAX_CUSTOM_ATTRIBUTES}",
            close=True,
        )
    variant = request.headers.get("x-amzn-sagemaker-target-variant") or PRODUCTION_VARIANT
    host = {PRODUCTION_VARIANT: endpoint.current, CANDIDATE_VARIANT: endpoint.candidate}.get(variant)
    answering_version = endpoint.record.version  # read with the host: a promotion swaps both at once
    if variant not in (PRODUCTION_VARIANT, CANDIDATE_VARIANT):
        return aws_error(
            400, "ValidationError", f"Endpoint {name} has no production variant {variant!r}", close=True
        )
    if host is None:
        what = "no model is deployed" if variant == PRODUCTION_VARIANT else "no candidate version is loaded"
        reason = f" ({endpoint.failure_reason})" if endpoint.failure_reason else ""
        return aws_error(
            400, "ValidationError", f"Endpoint {name} is {endpoint.status}: {what}{reason}", close=True
        )
    try:
        body = await read_body(request, state)
    except BodyError as error:
        code = "ValidationError" if error.status != 408 else "RequestTimeout"
        return aws_error(error.status, code, error.message, close=True)
    content_type = request.headers.get("content-type", "")
    try:
        response, response_type = await host.invoke(body, content_type, _accept(request))
    except Exception as error:
        status = _handler_status(error)
        if status is None:
            logger.exception("invocation of %s failed", name)
        original = status or 500
        message = _handler_message(error) if status else f"{type(error).__name__}: {error}"
        kind = "client" if status else "server"
        return aws_error(
            424,
            "ModelError",
            f'Received {kind} error ({original}) from primary with message "{message}". '
            f"See the endpoint server's log for {name}.",
            OriginalStatusCode=original,
            OriginalMessage=message,
            LogStreamArn=f"local:{name}/{variant}",
        )
    if variant == PRODUCTION_VARIANT and endpoint.capture is not None and endpoint.capture.sampled():
        await asyncio.to_thread(
            endpoint.capture.write,
            body,
            content_type,
            response,
            response_type,
            request.headers.get("x-amzn-sagemaker-inference-id"),
            answering_version,
        )
    return Response(
        response,
        200,
        media_type=None,
        headers={"Content-Type": response_type, "x-Amzn-Invoked-Production-Variant": variant},
    )


# --- control routes (the rollout's): token-guarded, loopback only
def _authorized(request: Request) -> bool:
    return secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), _state(request).token)


def _control(route: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def guarded(request: Request) -> Response:
        if not _authorized(request):
            return error_body(
                403, f"the control routes need the {TOKEN_HEADER} header from server.json", True
            )
        try:
            return await route(request)
        except BodyError as error:
            return error_body(error.status, error.message, close=True)

    return guarded


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        document = json.loads(await read_body(request, _state(request)) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BodyError(400, f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BodyError(400, "the body must be a JSON object")
    return document


async def list_endpoints(request: Request) -> Response:
    state = _state(request)
    return JSONResponse({"Endpoints": [e.describe(state.base_url) for e in state.endpoints.values()]})


async def load_candidate(request: Request) -> Response:
    """Load a version beside the serving one; it answers only requests that target the candidate variant."""
    state = _state(request)
    name = request.path_params["name"]
    document = await _json_body(request)
    try:
        stage, version = str(document["stage"]), int(document["version"])
        arn, model_data_url = str(document["model_package_arn"]), str(document["model_data_url"])
    except (KeyError, TypeError, ValueError):
        return error_body(400, "send stage, version, model_package_arn and model_data_url")
    if state.workspace is None:
        return error_body(400, "this server hosts a single version and takes no deployments")
    if state.restoring is not None and not state.restoring.done():
        await asyncio.shield(state.restoring)  # the versions served before a restart load first
    endpoint = state.endpoints.get(name) or state.new_endpoint(EndpointRecord(name, stage))
    if endpoint.loading or endpoint.candidate is not None:
        trying = endpoint.trying.version if endpoint.trying else "being restored"
        return error_body(409, f"{name} is already trying version {trying}")
    endpoint.loading, endpoint.trying = True, CandidatePackage(version, arn, model_data_url)
    try:
        archive = state.workspace.local_path(model_data_url)
        await state.probe_candidate(archive)
        endpoint.candidate = await state.load_host(endpoint, archive, f"{stage}-v{version}")
    except (ServingError, ValueError) as error:
        reason = f"version {version} failed to load: {error}"
        _record_failure(state, endpoint, reason)
        return error_body(422, reason)
    finally:
        endpoint.loading = False
    return JSONResponse(
        {"EndpointName": name, "CandidateVersion": version, "Ping": endpoint.candidate.alive()}
    )


def _record_failure(state: ServerState, endpoint: LocalEndpoint, reason: str) -> None:
    """The version being tried is refused: recorded in the history; it no longer counts as tried."""
    trying, endpoint.trying = endpoint.trying, None
    endpoint.failure_reason = reason
    if trying is not None:
        endpoint.record.history.append(
            Deployment(now(), trying.version, trying.model_package_arn, "Failed", reason)
        )
    state.save()


def _candidate(request: Request) -> tuple[LocalEndpoint | None, Response | None]:
    endpoint = _state(request).endpoints.get(request.path_params["name"])
    if endpoint is None or endpoint.candidate is None or endpoint.trying is None:
        return None, error_body(409, f"{request.path_params['name']} has no candidate version loaded")
    return endpoint, None


async def promote_candidate(request: Request) -> Response:
    """The candidate takes the traffic; the previous version is unloaded once its requests are answered.

    The body may say it is a rollback and why (``{"outcome": "RolledBack", "reason": ...}``): the history
    records it so."""
    state = _state(request)
    endpoint, problem = _candidate(request)
    if problem is not None:
        return problem
    document = await _json_body(request)
    outcome = document.get("outcome", DEPLOYED)
    if outcome not in (DEPLOYED, ROLLED_BACK) or not isinstance(document.get("reason", ""), str):
        return error_body(400, f"outcome must be {DEPLOYED} or {ROLLED_BACK}, and reason a string")
    assert endpoint is not None and endpoint.candidate is not None and endpoint.trying is not None
    package, endpoint.trying = endpoint.trying, None
    previous, endpoint.current, endpoint.candidate = endpoint.current, endpoint.candidate, None
    record = endpoint.record
    record.version, record.model_package_arn = package.version, package.model_package_arn
    record.model_data_url = package.model_data_url
    record.history.append(
        Deployment(now(), package.version, package.model_package_arn, outcome, document.get("reason", ""))
    )
    endpoint.failure_reason = None
    state.save()
    if previous is not None:
        state.retire(previous)
    return JSONResponse(endpoint.describe(state.base_url))


async def discard_candidate(request: Request) -> Response:
    """The candidate never takes traffic: unloaded, and the reason recorded in the endpoint's history."""
    state = _state(request)
    endpoint, problem = _candidate(request)
    if problem is not None:
        return problem
    assert endpoint is not None and endpoint.candidate is not None
    reason = str((await _json_body(request)).get("reason") or "discarded")
    candidate, endpoint.candidate = endpoint.candidate, None
    state.retire(candidate)
    _record_failure(state, endpoint, reason)
    return JSONResponse(endpoint.describe(state.base_url))


def build_app(state: ServerState) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for hook in state.startup:
            result = hook(state)
            if asyncio.iscoroutine(result):
                await result
        try:
            yield
        finally:
            await state.close()
            for hook in state.shutdown:
                hook(state)

    app = Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
            Route("/endpoints/{name}/ping", endpoint_ping, methods=["GET"]),
            Route("/endpoints/{name}/invocations", invoke_endpoint, methods=["POST"]),
            Route("/_local/endpoints", _control(list_endpoints), methods=["GET"]),
            Route("/_local/endpoints/{name}/candidate", _control(load_candidate), methods=["POST"]),
            Route("/_local/endpoints/{name}/candidate", _control(discard_candidate), methods=["DELETE"]),
            Route(
                "/_local/endpoints/{name}/candidate/promote", _control(promote_candidate), methods=["POST"]
            ),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.server = state
    app.router.redirect_slashes = (
        False  # Starlette's redirect names the Host header's server: ours names ours
    )
    app.router.default = _slash_redirect(state, app.router)
    return app


def _slash_redirect(state: ServerState, router: Router) -> ASGIApp:
    """The router's fallback: a path that matches a route once its trailing slash is added or dropped is
    redirected there (307), with a ``Location`` on this server's own address, never on the request's ``Host``
    (``Host: evil.example`` must not send a client elsewhere); any other path is a 404."""

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "http" and path != "/":
            other = {**scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
            if any(route.matches(other)[0] is not Match.NONE for route in router.routes):
                query = scope.get("query_string", b"").decode("latin-1")
                location = state.base_url + quote(other["path"]) + (f"?{query}" if query else "")
                await RedirectResponse(location, 307)(scope, receive, send)
                return
        await router.not_found(scope, receive, send)

    return fallback


# ------------------------------------------------------------------------------------------------- uvicorn
class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with what it cannot parse answered as JSON, and a deadline on request heads.

    - Unreadable HTTP gets a JSON 400 and a close instead of uvicorn's plain text: SageMaker's error shape
      (``x-amzn-ErrorType``, ``{"Message"}``) when the request line names a runtime path, the hosting
      contract's ``{"error"}`` when it names another, both when no path can be read.
    - Every request head, the first of a connection and each next one on a kept-alive connection, must arrive
      within :data:`HEADER_TIMEOUT_SECONDS` of the moment the server waits for it, or the connection is
      answered 408 and closed. uvicorn's own timer only closes a connection that sends nothing at all; a
      client trickling bytes would hold it forever.

    Why a subclass of uvicorn's internal ``H11Protocol`` (checked against uvicorn 0.54): the public hook is
    ``uvicorn.Config(http=<protocol class>)``, which takes this class; no public setting reaches the two
    behaviours above. ``Config``'s ``timeout_keep_alive`` runs only while a connection is idle between requests
    (cancelled by the first byte), ``h11_max_incomplete_event_size`` bounds a head's size, not its time,
    ``limit_concurrency`` answers 503s, and a request uvicorn cannot parse never reaches the ASGI app (so no
    Starlette exception handler or middleware sees it): ``send_400_response`` writes uvicorn's fixed text. A
    proxy in front (the other way) would be a second server to run for a local stand-in. The overrides are the
    methods ``send_400_response``, ``data_received``, ``handle_events``, ``on_response_complete`` and the
    ``cycle`` attribute; ``tests/model_deploy/local/test_connections.py`` fails if an uvicorn upgrade moves them.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_start = b""
        self._wait_for_head()

    def _wait_for_head(self) -> None:
        """Start the deadline of the next request head; ``self.cycle`` is the request before it (or None)."""
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_cycle = self.cycle
        self._head_start = b""
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.cycle is self._head_cycle and len(self._head_start) < REQUEST_LINE_KEPT:
            self._head_start += data[: REQUEST_LINE_KEPT - len(self._head_start)]
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not self._head_cycle and self._head_timer is not None:  # a request head arrived
            self._head_timer.cancel()
            self._head_timer = None

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._wait_for_head()  # before uvicorn reads a pipelined request, which would stop the clock
        super().on_response_complete()

    def _head_timed_out(self) -> None:
        if self.cycle is self._head_cycle and not self.transport.is_closing():
            message = f"no complete request head within {HEADER_TIMEOUT_SECONDS:g} s"
            self._refuse(408, "Request Timeout", "RequestTimeout", message)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "Bad Request", "ValidationError", f"{msg} Send an HTTP/1.1 request.")

    def _refuse(self, status: int, phrase: str, code: str, message: str) -> None:
        """Answer ``status`` in the shape the request line's path asks for, log why, and close."""
        path = _request_path(self._head_start)
        where = f"{path}: " if path else ""
        logger.warning("%s %s%s (client %s)", status, where, message, _client_of(self.transport))
        if path is None:
            document: dict[str, str] = {"Message": message, "error": message}
        else:
            document = {"Message": message} if _is_runtime_path(path) else {"error": message}
        body = json.dumps(document).encode("utf-8")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if "Message" in document:
            headers.append((b"x-amzn-errortype", code.encode()))
        head = f"HTTP/1.1 {status} {phrase}\r\n".encode() + b"".join(
            name + b": " + value + b"\r\n" for name, value in headers
        )
        # Written raw, not through h11: after a protocol error, or mid-head, h11 refuses to frame an answer.
        self.transport.write(head + b"\r\n" + body)
        self.transport.close()


REQUEST_LINE_KEPT = 2048
"""Bytes of a request head kept until it parses: enough to read the path of a request that does not."""


def _request_path(head_start: bytes) -> str | None:
    """The path of ``METHOD /path HTTP/x`` at the start of a request head, if it has one."""
    parts = head_start.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) >= 2 and parts[1].startswith(b"/"):
        return parts[1].split(b"?", 1)[0].decode("latin-1")
    return None


def _client_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unknown"


def check_loopback(host: str) -> None:
    """Local endpoints answer this machine only: they have no authentication, as a real endpoint's IAM has."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ServingError(
            f"the local endpoint server listens on loopback only (127.0.0.1 or ::1), not {host!r}"
        )


def bind(host: str, port: int) -> socket.socket:
    check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on accepted sockets whose
    # protocol says TCP, and with it on every keep-alive answer waited out the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServingError(f"cannot listen on {host}:{port}: {error}") from error
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(state: ServerState, sock: socket.socket) -> uvicorn.Server:
    state.base_url = url_of(sock)
    config = uvicorn.Config(
        build_app(state),
        lifespan="on",
        http=JsonErrorH11Protocol,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=30,
    )
    return uvicorn.Server(config)


@dataclass
class RunningServer:
    """A server on a background thread of this process (tests, ``serve``); ``stop()`` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    state: ServerState
    sock: socket.socket

    @property
    def url(self) -> str:
        return self.state.base_url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=120)
        self.sock.close()


def start_in_thread(
    state: ServerState, host: str = "127.0.0.1", port: int = 0, timeout: float = 120
) -> RunningServer:
    sock = bind(host, port)
    server = make_server(state, sock)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="endpoint-server", daemon=True
    )
    thread.start()
    for _ in range(int(timeout * 20)):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    if not server.started:
        server.should_exit = True
        sock.close()
        raise ServingError("the endpoint server did not start")
    return RunningServer(server, thread, state, sock)


def adhoc_state(archive: Path, name: str, version: int, max_body_bytes: int = MAX_BODY_BYTES) -> ServerState:
    """A server for one version (``serve VERSION``): loaded at startup, nothing kept in the run folder."""
    state = ServerState(None, secrets.token_urlsafe(24), max_body_bytes=max_body_bytes, persistent=False)
    work_dir = Path(tempfile.mkdtemp(prefix="mlops-serve-"))
    try:
        host = load(archive, work_dir, ServingSettings(), f"v{version}")
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    endpoint = state.new_endpoint(EndpointRecord(name, "adhoc", version=version))
    endpoint.current = host
    return state


def workspace_state(workspace: Workspace, token: str | None = None) -> ServerState:
    """The server of a run folder: restores its endpoints at startup, records every deployment."""
    state = ServerState(workspace, token or secrets.token_urlsafe(24))

    def restore(s: ServerState) -> None:
        s.restoring = asyncio.get_running_loop().create_task(s.restore())

    state.startup.append(restore)
    return state


def run_foreground(state: ServerState, sock: socket.socket, on_ready: Callable[[str], None]) -> None:
    """Serve on ``sock`` (from :func:`bind`, taken before loading anything, so that a busy port costs no
    load) on this thread until SIGTERM or Ctrl-C; ``server.json`` exists exactly while it serves."""
    server = make_server(state, sock)
    folder = state.workspace.endpoints_dir if state.workspace is not None and state.persistent else None

    def ready(_: ServerState) -> None:
        if folder is not None:
            ServerInfo(os.getpid(), state.base_url, state.token, now()).write(folder)
        on_ready(state.base_url)

    def gone(_: ServerState) -> None:
        if folder is not None:
            ServerInfo.remove(folder, os.getpid())

    state.startup.append(ready)
    state.shutdown.append(gone)  # in the lifespan: uvicorn re-raises SIGTERM after it, which ends the process
    try:
        server.run(sockets=[sock])
    finally:
        gone(state)  # the socket is the caller's, who bound it: it closes it
