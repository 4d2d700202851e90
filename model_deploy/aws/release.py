"""``release.json``: what the render action decided, read by the deploy and smoke-test actions after it.

The render action writes it next to each stage's template (``<stage>-template.json``) and rendered settings
(``<stage>-config.json``) in the pipeline artifact, so every later action works on the same version and the
decision can be read in the artifact after the run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

RELEASE_FILE = "release.json"

StageAction = Literal["deploy", "current", "none"]
"""``deploy``: the stage gets the version; ``current``: it already serves it (left alone); ``none``: nothing
is approved, so nothing is deployed."""


def template_file(stage: str) -> str:
    return f"{stage}-template.json"


def settings_file(stage: str) -> str:
    return f"{stage}-config.json"


@dataclass(frozen=True)
class StagePlan:
    stage: str
    endpoint_name: str
    stack_name: str
    action: StageAction
    serving: str | None
    """The model package the stage served when the release was rendered."""


@dataclass(frozen=True)
class Release:
    model_package_arn: str | None
    model_package_version: int | None
    stages: dict[str, StagePlan] = field(default_factory=dict)
    message: str = ""

    @property
    def nothing_to_do(self) -> bool:
        """No approved version, or every stage already serves it (a duplicate event, a rejection of a version
        that does not serve): the rest of the run would only wait at the gate for a no-op."""
        return self.model_package_arn is None or all(p.action != "deploy" for p in self.stages.values())

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / RELEASE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> Release:
        path = directory / RELEASE_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path}: no release; run `python -m model_deploy render` first"
            ) from None
        stages = {name: StagePlan(**plan) for name, plan in document.pop("stages").items()}
        return cls(stages=stages, **document)
