"""The local rollout: what the deploy CodePipeline does on AWS, done by an approval in the local registry.

Approving (or rejecting) a version in the local Model Registry emits its EventBridge-shaped event;
:func:`on_model_package_event` receives it, as the approval rule's target does on AWS (the command line and the
web page subscribe it: ``pipelines.local.events``), and rolls the newest approved version out to ``staging``:

1. resolve: the newest ``Approved`` version of the group (none: say so, touch nothing); a stage that already
   serves it is left alone, so a duplicate event changes nothing;
2. the version is loaded beside whatever the stage serves (the endpoint server starts in the background if it
   is not running) and must answer ``/ping``;
3. the smoke test (:mod:`model_deploy.smoke_test`, the one the AWS pipeline runs) invokes it through boto3's
   ``sagemaker-runtime`` client with ``TargetVariant`` set to the candidate;
4. only then does it take the stage's traffic. A version that fails to load or fails the smoke test never
   does: the old one keeps serving and the failure is recorded with its reason.

``prod`` waits for the manual gate: ``python -m pipelines endpoints promote`` rolls what staging serves out to
prod the same way. Set ``MLOPS_LOCAL_ROLLOUT=off`` to have approvals only record their event.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_deploy.local.state import (
    CANDIDATE_VARIANT,
    DEPLOYED,
    ROLLED_BACK,
    EndpointRecord,
    EndpointStore,
    ServerInfo,
)
from model_deploy.smoke_test import run_smoke_test
from model_deploy.stage_config import STAGES
from pipelines.local.events import SubscriberError
from pipelines.local.registry import ApprovalStatus, ModelPackage, ModelRegistry
from pipelines.local.workspace import Workspace

ROLLOUT_ENV = "MLOPS_LOCAL_ROLLOUT"
PORT_ENV = "MLOPS_ENDPOINTS_PORT"
DEFAULT_PORT = 8080
SERVER_LOG = "server.log"
START_TIMEOUT_SECONDS = 180
Output = Callable[[str], None]


class RolloutError(SubscriberError):
    """The rollout could not run (the server did not start, the registry has no such version)."""


class RolloutFailed(SubscriberError):
    """The version was refused (it did not load, or failed its smoke test); the old one keeps serving."""


@dataclass(frozen=True)
class RolloutResult:
    endpoint_name: str
    outcome: str
    """``Deployed``, ``Unchanged``, ``Failed`` or ``NothingApproved``."""
    version: int | None = None
    reason: str = ""


# ------------------------------------------------------------------------------------------------- the server
def rollout_enabled() -> bool:
    return os.environ.get(ROLLOUT_ENV, "on").strip().lower() not in ("0", "off", "false", "no")


def default_port() -> int:
    value = os.environ.get(PORT_ENV, str(DEFAULT_PORT))
    try:
        return int(value)
    except ValueError:
        raise RolloutError(f"{PORT_ENV}={value!r} is not a port number") from None


def start_server(workspace: Workspace, port: int | None = None, out: Output = print) -> ServerInfo:
    """The running endpoint server of ``workspace``, started in the background when none runs."""
    running = ServerInfo.read(workspace.endpoints_dir)
    if running is not None:
        return running
    workspace.endpoints_dir.mkdir(parents=True, exist_ok=True)
    log_path = workspace.endpoints_dir / SERVER_LOG
    port = default_port() if port is None else port
    if not 0 <= port <= 65535:
        raise RolloutError(f"port {port} is not a TCP port (0-65535; 0 picks a free one)")
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "serve",
        "--run-dir",
        str(workspace.root),
        "--port",
        str(port),
    ]
    start_of_this_run = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in this terminal does not stop the server
            cwd=Path(__file__).resolve().parents[2],
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        info = ServerInfo.read(workspace.endpoints_dir)
        if info is not None and info.pid == process.pid and responds(info.url):
            out(f"Started the endpoint server at {info.url} (pid {info.pid}, log {log_path})")
            return info
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if process.poll() is None:
        process.terminate()
    with log_path.open("rb") as log:
        log.seek(start_of_this_run)
        lines = [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    tail = "\n".join(lines[-3:]) or "(it printed nothing)"
    raise RolloutError(f"the endpoint server did not start ({log_path}):\n{tail}")


def stop_server(workspace: Workspace, timeout_seconds: float = 60) -> ServerInfo | None:
    """SIGTERM the running server and wait until it has unloaded its models; None when none ran."""
    info = ServerInfo.read(workspace.endpoints_dir)
    if info is None:
        return None
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if _exited(info.pid):
            return info
        time.sleep(0.1)
    raise RolloutError(f"the endpoint server (pid {info.pid}) did not stop within {timeout_seconds:g} s")


def _exited(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reaps it when this process started it
        if finished:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def responds(url: str) -> bool:
    """Whether a server answers ``GET /ping`` at ``url`` (a pid that exists may belong to a dead server)."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


class EndpointClient:
    """The rollout's view of a running server: its control routes, and a boto3 runtime client for it."""

    def __init__(self, info: ServerInfo) -> None:
        self.info = info

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 600) -> Any:
        request = urllib.request.Request(
            f"{self.info.url}/_local{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"X-Mlops-Token": self.info.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", error.reason)
            except (json.JSONDecodeError, AttributeError):
                message = error.reason
            raise RolloutError(str(message)) from None
        except OSError as error:
            raise RolloutError(f"the endpoint server at {self.info.url} did not answer: {error}") from None

    def endpoints(self) -> list[dict[str, Any]]:
        return self._call("GET", "/endpoints")["Endpoints"]

    def describe(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.endpoints() if e["EndpointName"] == name), None)

    def load_candidate(self, name: str, stage: str, package: ModelPackage) -> dict[str, Any]:
        body = {
            "stage": stage,
            "version": package.version,
            "model_package_arn": package.arn,
            "model_data_url": package.model_data_url,
        }
        return self._call("POST", f"/endpoints/{name}/candidate", body)

    def promote(self, name: str, outcome: str = DEPLOYED, reason: str = "") -> dict[str, Any]:
        return self._call(
            "POST", f"/endpoints/{name}/candidate/promote", {"outcome": outcome, "reason": reason}
        )

    def discard(self, name: str, reason: str) -> dict[str, Any]:
        return self._call("DELETE", f"/endpoints/{name}/candidate", {"reason": reason})

    def runtime(self) -> Any:
        """A boto3 ``sagemaker-runtime`` client pointed at this server, as application code would make one."""
        return runtime_client(self.info.url)


def describe_endpoints(workspace: Workspace) -> tuple[list[dict[str, Any]], ServerInfo | None]:
    """Each endpoint as the running server describes it, or from its saved state (``OutOfService``) when no
    server runs; and the running server, if any."""
    info = ServerInfo.read(workspace.endpoints_dir)
    if info is not None:
        return EndpointClient(info).endpoints(), info
    described = [
        {
            "EndpointName": record.name,
            "Stage": record.stage,
            "EndpointStatus": "OutOfService",
            "Url": "(server stopped)",
            "Version": record.version,
            "FailureReason": None,
            "History": [vars(entry) for entry in record.history],
        }
        for record in EndpointStore(workspace.endpoints_dir).load().values()
    ]
    return described, None


def invoke_reviews(
    workspace: Workspace, endpoint_name: str, texts: list[str]
) -> tuple[list[dict[str, Any]], str]:
    """Ask a local endpoint for the sentiment of ``texts`` through ``sagemaker-runtime``, as an application
    would: one answer per text, and the variant that answered."""
    from botocore.exceptions import ClientError

    info = ServerInfo.read(workspace.endpoints_dir)
    if info is None:
        raise RolloutError(f"no endpoint server runs: `{_python()} -m pipelines endpoints start`")
    try:
        answer = runtime_client(info.url, workspace.config.region).invoke_endpoint(
            EndpointName=endpoint_name,
            Body=json.dumps({"features": texts}),
            ContentType="application/json",
            Accept="application/json",
        )
    except ClientError as error:
        raise RolloutError(f"{endpoint_name}: {error.response['Error'].get('Message', error)}") from None
    return json.loads(answer["Body"].read()), answer.get("InvokedProductionVariant", "")


def runtime_client(url: str, region: str = "us-east-1") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, read_timeout=120),
    )


# ------------------------------------------------------------------------------------------------- rollout
def _failed_on(record: EndpointRecord | None, package: ModelPackage) -> str | None:
    """Why ``package``'s last attempt on this endpoint failed, if its last attempt did."""
    attempts = [
        entry for entry in (record.history if record else []) if entry.model_package_arn == package.arn
    ]
    return attempts[-1].reason if attempts and attempts[-1].outcome == "Failed" else None


def _target(
    workspace: Workspace,
    stage: str,
    registry: ModelRegistry,
    out: Output,
    version: int | None = None,
) -> ModelPackage | None:
    """Staging takes the newest approved version that has not already failed there (or ``version``, which is
    retried even if it failed); prod takes what staging serves, if it is still approved."""
    group = workspace.config.model_package_group_name
    records = EndpointStore(workspace.endpoints_dir).load()
    if stage == STAGES[0]:
        if version is not None:
            package = registry.describe(group, version)
            if package.approval_status == ApprovalStatus.REJECTED:
                raise RolloutError(
                    f"version {version} is Rejected, and a rejected version stays rejected: register a new one"
                )
            if package.approval_status != ApprovalStatus.APPROVED:
                raise RolloutError(f"version {version} is {package.approval_status}: approve it first")
            return package
        record = records.get(workspace.config.endpoint_name(stage))
        for package in reversed(registry.list(group, ApprovalStatus.APPROVED)):
            reason = _failed_on(record, package)
            if reason is None:
                return package
            out(
                f"Version {package.version} failed on {record.name if record else stage} before "
                f"({_first_line(reason)}); skipped. Reject it, or retry it with "
                f"`{_python()} -m pipelines endpoints deploy --version {package.version}`."
            )
        out(f"No approved version in {group} to deploy: no endpoint touched.")
        return None
    staging = records.get(workspace.config.endpoint_name(STAGES[0]))
    if staging is None or staging.version is None:
        out(f"{workspace.config.endpoint_name(STAGES[0])} serves nothing yet: approve a version first.")
        return None
    package = registry.describe(group, staging.version)
    if package.approval_status != ApprovalStatus.APPROVED:
        out(f"Staging serves version {package.version}, which is {package.approval_status}: not promoted.")
        return None
    return package


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _python() -> str:
    """How to call this interpreter in a hint: relative to the working folder when it is inside it."""
    try:
        return str(Path(sys.executable).relative_to(Path.cwd()))
    except ValueError:
        return "python"


def roll_out(
    workspace: Workspace, stage: str, out: Output = print, version: int | None = None, why: str = ""
) -> RolloutResult:
    """Deploy the stage's target version: load beside, ping, smoke test, then take the traffic.

    A version older than the one serving takes the traffic back: the history records a rollback, with
    ``why`` (the rejection that caused it) or, without one, that an older version replaced a newer one."""
    name = workspace.config.endpoint_name(stage)
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        package = _target(workspace, stage, registry, out, version)
    if package is None:
        return RolloutResult(name, "NothingApproved")
    client = EndpointClient(start_server(workspace, out=out))
    current = client.describe(name)
    if current and current["ModelPackageArn"] == package.arn and current["EndpointStatus"] == "InService":
        out(f"{name} already serves version {package.version} ({package.arn}): left as it is.")
        return RolloutResult(name, "Unchanged", package.version)
    serving = f" beside version {current['Version']}" if current and current["Version"] else ""
    out(f"{name}: loading version {package.version}{serving} ...")
    try:
        loaded = client.load_candidate(name, stage, package)
    except RolloutError as error:
        out(f"{name}: version {package.version} did not load: {error}")
        return RolloutResult(name, "Failed", package.version, str(error))
    if not loaded.get("Ping"):
        reason = f"version {package.version} loaded but does not answer /ping"
        client.discard(name, reason)
        return RolloutResult(name, "Failed", package.version, reason)
    out(f"{name}: version {package.version} answers /ping; smoke test through sagemaker-runtime ...")
    report = run_smoke_test(client.runtime(), name, target_variant=CANDIDATE_VARIANT)
    if not report.passed:
        reason = report.summary() + ": " + "; ".join(report.failures)
        client.discard(name, reason)
        keeps = (
            f"version {current['Version']} keeps serving"
            if current and current["Version"]
            else "nothing serves"
        )
        out(f"{name}: {reason}\n{name}: version {package.version} was not deployed; {keeps}.")
        return RolloutResult(name, "Failed", package.version, reason)
    serving_version = int(current["Version"]) if current and current["Version"] else None
    if serving_version is not None and package.version < serving_version:
        reason = why or f"version {package.version} replaced the newer version {serving_version}"
        client.promote(name, ROLLED_BACK, reason)
        out(f"{name}: {report.summary()}; rolled back to version {package.version} ({reason}).")
    else:
        client.promote(name, DEPLOYED, why)
        out(f"{name}: {report.summary()}; version {package.version} now takes the traffic.")
    return RolloutResult(name, "Deployed", package.version)


def raise_if_failed(result: RolloutResult) -> RolloutResult:
    """A refused version is an error for the command that asked for it (exit status 1), said in one line."""
    if result.outcome == "Failed":
        raise RolloutFailed(
            f"version {result.version} was not deployed to {result.endpoint_name}: {_first_line(result.reason)}"
        )
    return result


def on_model_package_event(event: dict[str, Any], workspace: Workspace) -> None:
    """The local approval rule's target: an approval or rejection in this project's group rolls staging."""
    if not rollout_enabled():
        return
    detail = event.get("detail", {})
    if detail.get("ModelPackageGroupName") != workspace.config.model_package_group_name:
        return
    status = detail.get("ModelApprovalStatus")
    if status not in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
        return
    print(
        f"Version {detail.get('ModelPackageVersion')} is {status}: rolling the newest approved version to staging."
    )
    why = f"version {detail.get('ModelPackageVersion')} was {status}"
    note = detail.get("ApprovalDescription")
    result = roll_out(workspace, STAGES[0], why=why + (f": {note}" if note else ""))
    prod = EndpointStore(workspace.endpoints_dir).load().get(workspace.config.endpoint_name(STAGES[1]))
    if result.outcome == "Deployed" and (prod is None or prod.version != result.version):
        print(f"Next: `{_python()} -m pipelines endpoints promote` sends version {result.version} to prod.")
    if status == ApprovalStatus.REJECTED:
        _warn_if_serving(workspace, detail.get("ModelPackageArn"), detail.get("ModelPackageVersion"))
    raise_if_failed(result)


def _warn_if_serving(workspace: Workspace, arn: str | None, version: object) -> None:
    """A rejected version that still serves somewhere is said out loud: nothing approved could replace it."""
    for record in EndpointStore(workspace.endpoints_dir).load().values():
        if arn and record.model_package_arn == arn:
            print(
                f"warning: {record.name} still serves version {version}, which is now Rejected; replace it by "
                + ("approving another version." if record.stage == STAGES[0] else "`endpoints promote`.")
            )
