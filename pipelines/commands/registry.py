"""``python -m pipelines registry list | describe VERSION | approve VERSION [--note ..] | reject VERSION``.

Approving or rejecting goes through :func:`~pipelines.local.registry.change_approval` with the local rollout
subscribed, as the page's buttons do. The one-line summaries of a version (:func:`metrics_line`,
:func:`data_check_line`) are also what ``run`` prints after it registers one.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines.commands.common import print_table
from pipelines.local import mlflow_ui
from pipelines.local.registry import ModelPackage, ModelRegistry, change_approval
from pipelines.local.workspace import Workspace

NAME = "registry"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    registry = subparsers.add_parser(NAME, parents=parents, help="The local Model Registry.")
    actions = registry.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=parents, help="Every version of the group.")
    listing.add_argument("--status", help="Only versions with this ModelApprovalStatus.")
    describe = actions.add_parser("describe", parents=parents, help="One version, as JSON.")
    describe.add_argument("version", type=int)
    for action in ("approve", "reject"):
        change = actions.add_parser(action, parents=parents, help=f"{action.title()} a version.")
        change.add_argument("version", type=int)
        change.add_argument("--note", help="Why (stored as the version's ApprovalDescription).")


def run(args: argparse.Namespace, workspace: Workspace) -> int:
    group = workspace.config.model_package_group_name
    with ModelRegistry(workspace.registry_path, workspace.config.region) as registry:
        match args.registry_command:
            case "list":
                _list(registry, group, args.status)
            case "describe":
                package = registry.describe(group, args.version)
                described = {**package.describe(), "ApprovalHistory": package.history}
                if (champion := package.champion()) is not None:
                    described["ChampionCheck"] = champion  # what the gate compared it with, from evaluation
                if (
                    package.lineage.mlflow_run_id
                ):  # the execution's run in MLflow's UI (`pipelines experiments`)
                    described["MlflowRun"] = {
                        "RunId": package.lineage.mlflow_run_id,
                        "Url": mlflow_ui.run_url(package.lineage.mlflow_run_id),
                    }
                print(json.dumps(described, indent=2))
            case "approve" | "reject":
                status = "Approved" if args.registry_command == "approve" else "Rejected"
                from model_deploy.local.rollout import on_model_package_event

                package, failures = change_approval(
                    workspace, args.version, status, args.note, [on_model_package_event]
                )
                print(f"{group} version {package.version} is now {package.approval_status}")
                return 1 if failures else 0
    return 0


def _list(registry: ModelRegistry, group: str, status: str | None) -> None:
    packages = registry.list(group, status)
    if not packages:
        print(f"No versions in {group} yet: `python -m pipelines run --local` registers one.")
        return
    print_table(
        ["version", "status", "created", "execution", "note"],
        [
            [
                str(p.version),
                str(p.approval_status),
                p.creation_time[:19],
                p.lineage.execution_id,
                p.approval_description or "",
            ]
            for p in packages
        ],
        details=[
            [f"metrics: {metrics_line(p, short=True)}", f"data check: {data_check_line(p)}"] for p in packages
        ],
    )


def metrics_line(package: ModelPackage, short: bool = False) -> str:
    """The evaluation report's scalar metrics (``metrics.<name>.value``); ``short``: accuracy and F1 only."""
    scalars = package.scalar_metrics(short)
    line = "  ".join(f"{name} {value:.4f}" for name, value in scalars.items()) or "(none reported)"
    if (baseline := package.baseline()) is not None:
        name, best_f1, margin = baseline
        line += f"  vs {name} f1_macro {best_f1:.4f} ({margin:+.4f})"
    check = package.champion()
    return f"{line}  {_champion_text(check)}" if check is not None else line


def _champion_text(check: dict[str, Any]) -> str:
    """How a version compared with the champion when it was evaluated: ``vs champion v3 f1_macro ...``."""
    if check["outcome"] == "no champion":
        return "vs champion: none"
    arn = str(check.get("model_package_arn") or "")
    version = arn.rsplit("/", 1)[-1] if arn else "?"
    return f"vs champion v{version} f1_macro {check['f1_macro']:.4f} ({check['margin']:+.4f})"


def data_check_line(package: ModelPackage) -> str:
    """The data check's figures the version carries (rows, worst missing share, bias), or a dash."""
    figures = package.lineage.data_check
    if not figures:
        return "-"

    def number(key: str) -> str:
        try:
            return f"{float(figures[key]):.2f}"
        except (KeyError, ValueError):
            return "n/a"

    return (
        f"{figures.get('DataCheckRows', '?')} rows, missing<={number('DataCheckMaxMissingShare')}, "
        f"max |CI| {number('DataCheckMaxAbsCI')}, max |DPL| {number('DataCheckMaxAbsDPL')}"
    )
