"""The endpoint commands of ``python -m pipelines`` that need no rollout: serve, and the empty-folder answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pipelines import cli
from pipelines.local.workspace import Workspace
from tests.model_deploy.local.conftest import register, request

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_serve_an_unknown_version_exits_with_the_registrys_error(tmp_path: Path, capsys) -> None:
    assert cli.main(["serve", "7", "--run-dir", str(tmp_path)]) == 2
    assert "has no version 7: it has no versions yet" in capsys.readouterr().err


def test_a_busy_port_is_refused_before_the_version_is_unpacked(
    tmp_path: Path, model_archive: Path, capsys, monkeypatch
) -> None:
    from model_deploy.local import server

    workspace = Workspace.open(tmp_path / "run")
    register(workspace, model_archive)
    unpacked: list[Path] = []
    monkeypatch.setattr(server, "adhoc_state", lambda archive, *_: unpacked.append(archive))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "1", "--port", str(port), "--run-dir", str(workspace.root)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert unpacked == []


def test_start_on_another_port_than_the_running_servers_is_refused(tmp_path: Path, capsys) -> None:
    from model_deploy.local.state import ServerInfo

    workspace = Workspace.open(tmp_path)
    ServerInfo(os.getpid(), "http://127.0.0.1:8123", "token", "now").write(workspace.endpoints_dir)
    try:
        assert cli.main(["endpoints", "start", "--port", "8099", "--run-dir", str(tmp_path)]) == 2
        assert "already runs at http://127.0.0.1:8123" in capsys.readouterr().err
        assert cli.main(["endpoints", "start", "--port", "8123", "--run-dir", str(tmp_path)]) == 0
        assert cli.main(["endpoints", "start", "--run-dir", str(tmp_path)]) == 0
        assert capsys.readouterr().out.count("The endpoint server runs at http://127.0.0.1:8123") == 2
    finally:
        ServerInfo.remove(workspace.endpoints_dir, os.getpid())


def test_deploying_a_rejected_or_pending_version_says_what_to_do(
    tmp_path: Path, model_archive: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MLOPS_LOCAL_ROLLOUT", "off")
    workspace = Workspace.open(tmp_path / "run")
    register(workspace, model_archive)
    run_dir = str(workspace.root)
    assert cli.main(["endpoints", "deploy", "--version", "1", "--run-dir", run_dir]) == 2
    assert "version 1 is PendingManualApproval: approve it first" in capsys.readouterr().err
    assert cli.main(["registry", "reject", "1", "--run-dir", run_dir]) == 0
    assert cli.main(["endpoints", "deploy", "--version", "1", "--run-dir", run_dir]) == 2
    assert "a rejected version stays rejected: register a new one" in capsys.readouterr().err


def test_an_empty_run_folder_says_what_to_do(tmp_path: Path, capsys) -> None:
    assert cli.main(["endpoints", "--run-dir", str(tmp_path)]) == 0
    assert "No endpoints yet: approve a version" in capsys.readouterr().out
    assert cli.main(["endpoints", "status", "--run-dir", str(tmp_path)]) == 3
    assert "No endpoint server runs." in capsys.readouterr().out
    assert cli.main(["endpoints", "stop", "--run-dir", str(tmp_path)]) == 0
    assert cli.main(["predict", "Nice dress", "--run-dir", str(tmp_path)]) == 2
    assert "no endpoint server runs: " in capsys.readouterr().err
    assert cli.main(["endpoints", "promote", "--run-dir", str(tmp_path)]) == 1
    assert "serves nothing yet: approve a version first" in capsys.readouterr().out


def test_the_server_refuses_to_listen_beyond_loopback(tmp_path: Path, capsys) -> None:
    assert cli.main(["serve", "--host", "0.0.0.0", "--run-dir", str(tmp_path)]) == 2
    assert "loopback only" in capsys.readouterr().err


def test_serve_a_version_prints_how_to_call_it_and_stops_on_ctrl_c(
    tmp_path: Path, model_archive: Path
) -> None:
    workspace = Workspace.open(tmp_path / "run")
    register(workspace, model_archive)
    unpack_root = tmp_path / "tmp"
    unpack_root.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "serve", "1", "--port", "0", "--run-dir", str(workspace.root)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(unpack_root)},
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any("Serving at" in line for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        served = next(line for line in lines if "Serving at" in line)
        url = served.split("Serving at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert request(url, "GET", "/ping")[0] == 200
        assert list(unpack_root.glob("mlops-serve-*"))  # the model is unpacked while it serves
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        # Not communicate(): with a timeout it reads the pipe's descriptor and would skip the lines
        # readline() has already buffered.
        out = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
    printed = "".join(lines) + out
    assert "version 1 (PendingManualApproval)" in printed
    assert "/invocations -H 'Content-Type: application/json' -d '{\"features\": [" in printed
    assert "Stopped." in printed and process.returncode == 0
    assert not list(unpack_root.glob("mlops-serve-*"))  # and removed when it stops
