"""Wall time of ``python -m pipelines run --local`` on the sample data, per step: cold, then with processing
cached, then with every step cached.

Three executions in one fresh run folder, with the pipeline's local defaults (``--quick``: one short epoch):

1. **cold**: nothing cached, the baseline (the quality gate opened, so that every run registers a version);
2. **processing cached**: ``LearningRate`` changed, a training-only parameter, so processing is a cache hit and
   training, evaluation and registration run again (the rerun after a failed or tuned training);
3. **all cached**: the same parameters as 2, so only the condition and registration run.

Each time is the command's own wall time (``time.perf_counter`` around the subprocess, Python start-up
included) and the per-step durations from the execution record. The target: the cold run in under 3 minutes
on a 2-core machine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench._process import run_local_pipeline
from pipelines.local.executions import ExecutionRecord, ExecutionStore
from pipelines.local.workspace import Workspace

TITLE = "Local pipeline run: wall time per step, cold and cached"
TARGET_SECONDS = 180.0
TIMING_PARAMETERS = ["MinAccuracy=0.0", "MinF1Macro=0.0", "MinBaselineMargin=-1.0", "MinChampionMargin=-1.0"]
"""Every run registers, whatever the model scores: this measures time, not model quality."""
QUICK_PARAMETERS = ["Epochs=1", "TrainStepsPerEpoch=4"]


def _run(run_dir: Path, parameters: list[str]) -> tuple[float, ExecutionRecord]:
    seconds, result = run_local_pipeline(run_dir, parameters)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(result.args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return seconds, ExecutionStore(Workspace.open(run_dir).executions_dir).load("latest")


def _cell(record: ExecutionRecord, step: str) -> str:
    found = next((s for s in record.steps if s.name == step), None)
    if found is None:
        return "-"
    return f"{found.duration_s:.1f} s" + (" (cached)" if found.cache_hit else "")


def run(quick: bool) -> str:
    load = os.getloadavg()[0]
    base = [*TIMING_PARAMETERS, *(QUICK_PARAMETERS if quick else [])]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as folder:
        run_dir = Path(folder)
        cold_seconds, cold = _run(run_dir, base)
        cached_seconds, cached = _run(run_dir, [*base, "LearningRate=4e-5"])
        all_seconds, all_cached = _run(run_dir, [*base, "LearningRate=4e-5"])
    runs = [
        ("cold", cold_seconds, cold),
        ("processing cached", cached_seconds, cached),
        ("all cached", all_seconds, all_cached),
    ]
    steps = [step.name for step in cold.steps]
    lines = [
        f"Parameters: the local defaults (sample data, bundled MiniLM) with {', '.join(base)}; "
        f"load average at the start {load:.1f} (other work on the machine slows training).",
        "",
        "| step | " + " | ".join(name for name, _, _ in runs) + " |",
        "| --- | " + " | ".join("---:" for _ in runs) + " |",
    ]
    lines += [
        f"| {step} | " + " | ".join(_cell(record, step) for _, _, record in runs) + " |" for step in steps
    ]
    lines.append(
        "| **whole command** | " + " | ".join(f"**{seconds:.1f} s**" for _, seconds, _ in runs) + " |"
    )
    verdict = "met" if cold_seconds < TARGET_SECONDS else "NOT met"
    lines += [
        "",
        f"Cold run {cold_seconds:.0f} s: target (under {TARGET_SECONDS:.0f} s) {verdict}. "
        f"With processing cached the run takes {cached_seconds / cold_seconds:.2f}x the cold time; "
        f"with everything cached {all_seconds / cold_seconds:.2f}x (start-up, hashing, registration).",
    ]
    return "\n".join(lines)
