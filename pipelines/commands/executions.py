"""``python -m pipelines executions [ID]``: the local executions as a table, or one of them step by step."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from model_build.parameters import render, shown
from model_build.pipeline_spec import retry_policy_text
from pipelines.commands.common import TABLE_WIDTH, print_table
from pipelines.local.executions import ExecutionRecord, ExecutionStore, Status, StepRecord
from pipelines.local.workspace import Workspace

NAME = "executions"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    executions = subparsers.add_parser(NAME, parents=parents, help="Past local executions.")
    executions.add_argument(
        "id", nargs="?", help="One execution in detail (an id, a unique prefix, or 'latest')."
    )


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    store = ExecutionStore(workspace.executions_dir)
    if args.id:
        _print_execution(store.load(args.id), workspace)
        return 0
    records = store.list()
    if not records:
        print(f"No executions in {workspace.root} yet: `python -m pipelines run --local` starts one.")
        return 0
    rows = [
        [
            record.id,
            str(record.status),
            f"{record.duration_s:.0f}s" if record.duration_s is not None else "-",
            _steps_cell(record),
            _gate_cell(record),
        ]
        for record in records
    ]
    print_table(["execution", "status", "time", "steps", "quality gate"], rows)
    return 0


def _steps_cell(record: ExecutionRecord) -> str:
    """``7 steps, 3 cached``, with the step that failed or runs (`executions ID` has each step)."""
    cached = sum(1 for step in record.steps if step.cache_hit)
    parts = [f"{len(record.steps)} steps"] + ([f"{cached} cached"] if cached else [])
    parts += [f"{step.name} failed" for step in record.steps if step.status == Status.FAILED]
    parts += [f"{step.name} running" for step in record.steps if step.status == Status.EXECUTING]
    return ", ".join(parts)


def _gate_cell(record: ExecutionRecord) -> str:
    """What each condition compared, ``name value`` (with ``!`` where a check failed)."""
    cells = []
    for step in record.steps:
        for check in step.detail.get("checks", []) if step.type == "Condition" else []:
            value = check["left"]
            cells.append(f"{check['check']} {shown(value)}{'' if check['outcome'] else '!'}")
    return ", ".join(cells) or "-"


def _print_execution(record: ExecutionRecord, workspace: Workspace) -> None:
    print(f"Execution {record.id}: {record.status}")
    print(f"  pipeline   {record.pipeline}")
    print(f"  started    {record.created}   ended {record.ended or '-'}")
    if record.failure_reason:
        print(f"  reason     {record.failure_reason}")
    parameters = ", ".join(f"{k}={render(v)}" for k, v in record.parameters.items())
    print(textwrap.fill(parameters, TABLE_WIDTH, initial_indent="  parameters ", subsequent_indent=" " * 13))
    policies = [step.detail["retry_policies"] for step in record.steps if "retry_policies" in step.detail]
    common = max(policies, key=policies.count) if policies else None
    for policy in common or []:
        print(f"  retries    {retry_policy_text(policy)}")
    for step in record.steps:
        _print_step(step, workspace, common)


def _print_step(step: StepRecord, workspace: Workspace, common_retries: list[Any] | None) -> None:
    """A step's status, cache hit, metrics, outputs and details; its retry policies only where they differ
    from the execution's ``common_retries`` (printed once above)."""
    took = f"{step.duration_s:.1f}s" if step.duration_s is not None else "running"
    print(f"\n  {step.name} ({step.type}): {step.status} in {took}")
    if step.cache_hit:
        print(f"    cache hit: outputs of execution {step.cache_hit}")
    if step.failure_reason:
        print(f"    reason: {step.failure_reason}")
    for name, value in step.metrics.items():
        print(f"    metric {name} = {value}")
    for name, uri in step.outputs.items():
        print(f"    output {name}: {workspace.local_path(uri)}")
    for name, value in step.detail.items():
        if name == "retry_policies":
            for policy in value if value != common_retries else []:  # only where a step differs
                print(f"    retries: {retry_policy_text(policy)}")
        elif name == "checks":
            for check in value:
                verdict = "holds" if check["outcome"] else "FAILS"
                print(
                    f"    check {check['check']}: {check['json_path']} = {shown(check['left'])} "
                    f"{check['operator']} {shown(check['right'])}: {verdict}"
                )
        elif name not in ("metric_series", "outcome"):
            print(f"    {name}: {value}")
    if step.log:
        print(f"    log: {step.log}")
