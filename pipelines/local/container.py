"""The container contract, without a container: SageMaker's ``/opt/ml/...`` paths mapped into a folder.

A SageMaker job sees its inputs under ``/opt/ml/processing/input`` or ``/opt/ml/input/data/<channel>``, writes
to ``/opt/ml/processing/output`` or ``/opt/ml/model``, and learns the paths from its arguments or ``SM_*``
variables. Locally each step gets a folder standing for ``/`` of its container; arguments naming container
paths are rewritten into it, and the step's script runs as a subprocess of this Python interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

CONTAINER_PREFIX = "/opt/ml/"


@dataclass(frozen=True)
class ContainerFolder:
    """The folder standing for a step container's ``/``."""

    root: Path

    def path(self, container_path: str) -> Path:
        if not container_path.startswith(CONTAINER_PREFIX):
            raise ValueError(f"{container_path!r} is not a SageMaker container path ({CONTAINER_PREFIX}...)")
        return self.root / container_path.lstrip("/")

    def map(self, value: str) -> str:
        """An argument with a container path in it -> the local path; any other value unchanged."""
        return str(self.path(value)) if value.startswith(CONTAINER_PREFIX) else value


def stage(source: Path, destination: Path) -> None:
    """Make ``source`` appear at ``destination``, as SageMaker downloads an input before the job starts.

    A folder becomes ``destination`` itself, a file is placed inside ``destination`` (an S3 object lands in
    the input folder under its own name). Both are symlinks: inputs are read-only, and copying a model
    archive for every step would cost seconds and disk for nothing.
    """
    source = source.resolve()
    if source.is_dir():
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.symlink_to(source, target_is_directory=True)
    elif source.is_file():
        destination.mkdir(parents=True, exist_ok=True)
        (destination / source.name).symlink_to(source)
    else:
        raise FileNotFoundError(f"input {source} does not exist")


def pack_model(model_dir: Path, archive: Path) -> None:
    """``model.tar.gz`` from ``SM_MODEL_DIR``, with the folder's content at the archive's top level as
    SageMaker packs it (``config.json``, ``code/inference.py``, ... rather than ``model/config.json``).

    Compression level 1: model weights barely compress, and level 9 would add seconds to every local run.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
        for entry in sorted(model_dir.iterdir()):
            tar.add(entry, arcname=entry.name)
    partial.replace(archive)


class StepProcessError(RuntimeError):
    pass


@dataclass(frozen=True)
class ScriptRun:
    script: Path
    arguments: Sequence[str]
    cwd: Path
    environment: Mapping[str, str]
    log_path: Path


def run_script(
    run: ScriptRun,
    console: BinaryIO,
    on_line: Callable[[str], None] = lambda line: None,
    terminate_timeout_s: float = 10.0,
    cancel: threading.Event | None = None,
) -> None:
    """Run ``python <script> <arguments>`` and stream its output, live, to the console and to a log file.

    The console gets the bytes as they come, so the script's tqdm bars redraw in place; the log gets one
    line per finished line, with a progress bar's intermediate states (``\\r``) dropped. If this process is
    interrupted (Ctrl-C, SIGTERM turned into an exception) the script and every process it started are stopped
    before the error goes on: the script runs in a process group of its own, and an interruption that arrives
    while it is being started is held until the code that stops it is in place.

    ``cancel``: for a script run from another thread (where no signal arrives), an event that stops it the
    same way when set; it then ends as a failure.
    """
    run.log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(run.script), *run.arguments]
    with run.log_path.open("w", encoding="utf-8") as log:
        log.write(f"$ {' '.join(_quote(part) for part in command)}\n")
        log.flush()
        with _interruptions_held() as held:
            process = subprocess.Popen(
                command,
                cwd=run.cwd,
                env={**run.environment, "PYTHONUNBUFFERED": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole, Ctrl-C goes to us
            )
        assert process.stdout is not None
        if cancel is not None:
            threading.Thread(
                target=_stop_when_cancelled, args=(process, cancel, terminate_timeout_s), daemon=True
            ).start()
        lines = _LineSplitter()
        last_lines: list[str] = []
        try:
            held.release()  # an interruption that arrived during Popen is raised here, inside the try
            while chunk := os.read(process.stdout.fileno(), 1 << 16):
                console.write(chunk)
                console.flush()
                for line in lines.feed(chunk.decode("utf-8", errors="replace")):
                    log.write(line + "\n")
                    on_line(line)
                    last_lines = [*last_lines[-19:], line]
                log.flush()
            returncode = process.wait()
        finally:
            _stop_group(process, terminate_timeout_s)
            process.stdout.close()
        if tail := lines.flush():
            log.write(tail + "\n")
            last_lines.append(tail)
    if returncode != 0:
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        error_lines = [line for line in last_lines if line.strip()][-5:]
        raise StepProcessError(
            f"{run.script.name} {how} (log: {run.log_path})"
            + ("\n  " + "\n  ".join(error_lines) if error_lines else "")
        )


def _stop_when_cancelled(
    process: subprocess.Popen[bytes], cancel: threading.Event, terminate_timeout_s: float
) -> None:
    while not cancel.wait(0.2):
        if process.poll() is not None:
            return
    _stop_group(process, terminate_timeout_s)


def _stop_group(process: subprocess.Popen[bytes], terminate_timeout_s: float) -> None:
    """SIGTERM the script's process group (its workers too), then SIGKILL what is left after the timeout."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(terminate_timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    _signal_group(process.pid, signal.SIGKILL)  # children that outlived the script


def _signal_group(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


class _HeldInterruptions:
    """SIGINT/SIGTERM that arrived while held; :meth:`release` restores the handlers and re-sends them."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def hold(self, signum: int, frame: object) -> None:
        self.pending.append(signum)

    def release(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}
        pending, self.pending = self.pending, []
        for signum in pending:
            signal.raise_signal(signum)


@contextmanager
def _interruptions_held() -> Iterator[_HeldInterruptions]:
    """Hold SIGINT/SIGTERM (main thread only: elsewhere Python delivers no signals) until ``release()``."""
    held = _HeldInterruptions()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            held.previous[signum] = signal.signal(signum, held.hold)
    try:
        yield held
    except BaseException:
        held.release()
        raise


class _LineSplitter:
    """Splits a stream into lines; text before a ``\\r`` is a progress bar's state and is overwritten."""

    def __init__(self) -> None:
        self._current = ""
        self._overwrite = False

    def feed(self, text: str) -> list[str]:
        finished = []
        for piece in re.split(r"(\r\n|\r|\n)", text):
            if piece in ("\n", "\r\n"):
                finished.append(self._current)
                self._current, self._overwrite = "", False
            elif piece == "\r":
                self._overwrite = True
            elif piece:
                if self._overwrite:
                    self._current, self._overwrite = "", False
                self._current += piece
        return finished

    def flush(self) -> str:
        current, self._current = self._current, ""
        return current


def _quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./-]+", part) else "'" + part.replace("'", "'\\''") + "'"


def remove_tree(folder: Path) -> None:
    """Delete a step's container folder; its inputs are symlinks, which are removed, never followed."""
    shutil.rmtree(folder, ignore_errors=True)
