"""Run a command as a process of its own and measure it from start to exit: wall seconds and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# ru_maxrss is a high-water mark that survives fork and exec: a child forked from this (large) process would
# report at least this process's size. So a fresh, small interpreter starts the command and reads its usage.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float
    log: str


def run_measured(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> Measured:
    """``command`` to its exit, its output in ``log_path``; raises with the log's tail when it fails."""
    peak_file = log_path.with_suffix(".maxrss")
    started = time.perf_counter()
    with log_path.open("w") as handle:
        result = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(peak_file), *command],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            check=False,
        )
    seconds = time.perf_counter() - started
    log = log_path.read_text()
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed (exit {result.returncode}):\n{log[-3000:]}")
    return Measured(seconds, int(peak_file.read_text()) / 1024, log)


def run_local_pipeline(
    run_dir: Path, assignments: list[str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """``python -m pipelines run --local`` in ``run_dir`` with ``NAME=VALUE`` parameters, offline: its wall
    seconds and the finished process (the caller decides what a non-zero exit means)."""
    command = [sys.executable, "-m", "pipelines", "run", "--local", "--run-dir", str(run_dir)]
    for assignment in assignments:
        command += ["--param", assignment]
    started = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        check=False,
    )
    return time.perf_counter() - started, result
