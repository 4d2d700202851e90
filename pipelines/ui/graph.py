"""The pipeline graph of one execution: the shared description's steps, placed in columns, with their status.

The graph comes from :data:`model_build.pipeline_spec.PIPELINE` (the description both runners are built from),
not from what ran, so a step that has not started yet, or a branch the condition did not take, is drawn too.
A step's column is one more than that of the latest step it reads from (its ``StepOutput``/``JsonValue``
references, the steps it ``depends_on``, and the condition of a branch step); steps of one column stack in the
order they are described.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from html import escape
from pathlib import Path

from model_build.pipeline_spec import PIPELINE, ConditionStep, JsonValue, PipelineSpec, StepOutput
from pipelines.local.executions import ExecutionRecord, StepRecord

NODE_WIDTH = 178
NODE_HEIGHT = 58
COLUMN_GAP = 56
ROW_GAP = 26
MARGIN = 12
NOT_STARTED = "NotStarted"
SKIPPED = "Skipped"
"""A branch step whose condition took the other branch (SageMaker shows it as not executed)."""


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    status: str
    """Executing, Succeeded, Failed (the record's), Skipped, or NotStarted."""
    label: str
    """The duration, ``cached``, or what the status means."""
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    """``if true``/``if false`` on a condition's branches, else empty."""
    taken: bool
    path: str
    """The SVG path from the source's right side to the target's left side."""
    label_x: int
    label_y: int


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT


def dependencies(spec: PipelineSpec) -> dict[str, list[tuple[str, str]]]:
    """Step -> [(the step it depends on, the edge's label)], in description order, without duplicates."""
    found: dict[str, list[tuple[str, str]]] = {step.name: [] for step in spec.steps}
    for step in spec.steps:
        # What it reads, and what must succeed first though nothing of it is read (a gate on the same data).
        upstream = [r.step for r in step.references() if isinstance(r, StepOutput | JsonValue)]
        upstream += list(getattr(step, "depends_on", ()))
        for name in upstream:
            if name not in (source for source, _ in found[step.name]):
                found[step.name].append((name, ""))
        if isinstance(step, ConditionStep):
            for names, label in ((step.if_true, "if true"), (step.if_false, "if false")):
                for name in names:
                    found[name] = [(source, lbl) for source, lbl in found[name] if source != step.name]
                    found[name].append((step.name, label))
    return found


def build_graph(spec: PipelineSpec, record: ExecutionRecord) -> Graph:
    depends = dependencies(spec)
    column: dict[str, int] = {}
    for step in spec.steps:  # references always point to earlier steps (PipelineSpec checks it)
        column[step.name] = 1 + max((column[source] for source, _ in depends[step.name]), default=-1)
    rows: dict[int, int] = {}
    position: dict[str, tuple[int, int]] = {}
    for step in spec.steps:
        row = rows.get(column[step.name], 0)
        rows[column[step.name]] = row + 1
        position[step.name] = (
            MARGIN + column[step.name] * (NODE_WIDTH + COLUMN_GAP),
            MARGIN + row * (NODE_HEIGHT + ROW_GAP),
        )
    ran = {step.name: step for step in record.steps}
    nodes = []
    for step in spec.steps:
        x, y = position[step.name]
        if step.name in ran:
            status, label = str(ran[step.name].status), _label(ran[step.name])
        elif step.name in record.skipped:
            status, label = SKIPPED, "branch not taken"
        else:
            status, label = NOT_STARTED, "not started"
        nodes.append(Node(step.name, step.kind, status, label, x, y))
    edges = []
    for target, sources in _reduced(depends).items():
        for source, label in sources:
            (sx, sy), (tx, ty) = position[source], position[target]
            start_x, start_y = sx + NODE_WIDTH, sy + NODE_HEIGHT // 2
            end_x, end_y = tx, ty + NODE_HEIGHT // 2
            middle = (start_x + end_x) // 2
            path = f"M{start_x},{start_y} C{middle},{start_y} {middle},{end_y} {end_x},{end_y}"
            taken = target in ran if label else True
            edges.append(Edge(source, target, label, taken, path, middle, (start_y + end_y) // 2 - 4))
    width = MARGIN * 2 + (max(column.values()) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + max(rows.values()) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return Graph(tuple(nodes), tuple(edges), width, height)


def _reduced(depends: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
    """Without the edges another path already implies (RegisterModel reads TrainModel's model, but it comes
    after the condition, which comes after training): the drawing shows the order, not every data flow."""
    ancestors: dict[str, set[str]] = {}
    for name, sources in depends.items():  # description order: sources come first
        ancestors[name] = set().union(*({source} | ancestors[source] for source, _ in sources))
    return {
        name: [
            (source, label)
            for source, label in sources
            if not any(source in ancestors[other] for other, _ in sources if other != source)
        ]
        for name, sources in depends.items()
    }


def _label(step: StepRecord) -> str:
    if step.cache_hit:
        return "cached"
    if step.duration_s is None:
        return "running"
    return duration_text(step.duration_s)


def duration_text(seconds: float | None) -> str:
    """``12.3 s`` below two minutes, ``13.2 min`` above."""
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


DOCS_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "images" / "pipeline.svg"
"""The README's picture: :func:`description_svg` of :data:`~model_build.pipeline_spec.PIPELINE`, written by
``python -m pipelines.ui.graph`` (a test fails when the file and the description differ)."""


def description_svg(spec: PipelineSpec) -> str:
    """The pipeline as described, no execution: every step with its kind, the condition's branches labelled.

    A standalone SVG with its style inline (no page stylesheet, no link), drawn with the page's layout, so
    that a picture of the pipeline in the docs is made from the description rather than drawn by hand.
    """
    graph = build_graph(spec, ExecutionRecord(id="", pipeline="", parameters={}))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {graph.width} {graph.height}" '
        f'width="{graph.width}" height="{graph.height}" role="img" aria-label="{escape(spec.description or "the pipeline")}">',
        "<style>"
        "rect{fill:#fff;stroke:#b7c0ce;stroke-width:1.5}"
        ".edge{fill:none;stroke:#8a94a6;stroke-width:1.6}"
        "text{font-family:system-ui,'DejaVu Sans',sans-serif}"
        ".name{font-size:13px;font-weight:600;fill:#1f2733}"
        ".meta,.label{font-size:11px;fill:#667085}"
        "</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8a94a6"/></marker></defs>',
    ]
    for edge in graph.edges:
        parts.append(f'<path class="edge" d="{edge.path}" marker-end="url(#arrow)"/>')
        if edge.label:
            parts.append(
                f'<text class="label" x="{edge.label_x}" y="{edge.label_y}" text-anchor="middle">'
                f"{escape(edge.label)}</text>"
            )
    for node in graph.nodes:
        parts.append(
            f'<rect x="{node.x}" y="{node.y}" width="{graph.node_width}" height="{graph.node_height}" rx="8"/>'
            f'<text class="name" x="{node.x + 12}" y="{node.y + 22}">{escape(node.name)}</text>'
            f'<text class="meta" x="{node.x + 12}" y="{node.y + 42}">{escape(node.kind)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":  # python -m pipelines.ui.graph [PATH]: (re)write the docs' picture
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS_PICTURE
    target.write_text(description_svg(PIPELINE), encoding="utf-8")
    print(f"wrote {target}")
