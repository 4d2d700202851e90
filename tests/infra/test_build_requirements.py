"""The build pipeline's CodeBuild project installs ``requirements-build.txt`` only, and that is enough: building
the SageMaker definition (what ``python -m pipelines run --sagemaker`` does before it starts it) imports no
distribution outside what those requirements install. Torch, transformers, the test tools and the CDK are left
to the machines that need them."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import subprocess
import sys
import textwrap

from packaging.requirements import Requirement

from infra.constructs.build_pipeline import BUILD_REQUIREMENTS
from tests.infra.conftest import REPO_ROOT

# Builds the definition offline (moto, as tests/model_build does) with every module of a distribution outside
# the allowed ones (argv[1], JSON) unimportable, as on a machine where only those are installed; optional
# imports then fail as they would there. Prints the distributions imported.
PROBE = textwrap.dedent(
    """
    import dataclasses, importlib.abc, importlib.metadata, json, os, sys
    allowed = set(json.loads(sys.argv[1]))
    owners = importlib.metadata.packages_distributions()

    def key(name):
        return name.lower().replace("_", "-")

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            dists = owners.get(name.split(".")[0])
            if dists and not any(key(d) in allowed for d in dists):
                raise ModuleNotFoundError(f"No module named {name!r} (not installed by the build)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    import pipelines.cli, pipelines.runners.sagemaker
    from tests.model_build.codebuild_environment import ENVIRONMENT, mocked_aws
    from model_build.config import load_config
    with mocked_aws() as aws:
        from model_build.sagemaker_pipeline import aws_settings, build_pipeline, pipeline_session
        config = load_config()
        settings = dataclasses.replace(
            aws_settings(config, aws, ENVIRONMENT),
            serving_instance_types=pipelines.runners.sagemaker.stage_instance_types(),
        )
        build_pipeline(settings, pipeline_session(settings, config, aws), config).definition()
    tops = {name.split(".")[0] for name in sys.modules}
    print(json.dumps(sorted({d for top in tops for d in owners.get(top, [])})))
    """
)
# What the probe itself brings (the offline AWS of the tests), and what every Python installation has (pip and
# setuptools, whose distutils shim Python loads at start-up).
HARNESS = ("moto", "pip", "setuptools")


def _key(name: str) -> str:
    return name.lower().replace("_", "-")


def closure(requirements: list[str]) -> set[str]:
    """The distributions installing ``requirements`` brings, by the installed packages' own metadata."""
    seen: set[str] = set()
    todo = [Requirement(r).name for r in requirements]
    while todo:
        name = todo.pop()
        if _key(name) in seen:
            continue
        seen.add(_key(name))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _requirements() -> list[str]:
    lines = (REPO_ROOT / BUILD_REQUIREMENTS).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_build_requirements_are_pinned_as_requirements_txt() -> None:
    pinned = {
        Requirement(line).name: line
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for line in _requirements():
        assert line == pinned[Requirement(line).name], line
    assert not closure(_requirements()) & {"torch", "transformers", "selenium", "moto", "cfn-lint", "pytest"}


def test_building_the_definition_imports_only_what_the_build_requirements_install() -> None:
    allowed = closure(_requirements()) | closure(list(HARNESS))
    result = _probe(allowed)
    assert result.returncode == 0, (
        f"building the definition needs more than {BUILD_REQUIREMENTS}: " + (result.stderr[-3000:])
    )
    imported = {_key(d) for d in json.loads(result.stdout.strip().splitlines()[-1])}
    assert "sagemaker-mlops" in imported, "the probe built the definition with the SDK"
    assert imported <= allowed


def test_the_probe_fails_when_a_needed_distribution_is_missing() -> None:
    """Without botocore (which the SDK needs), building the definition fails: the probe can fail."""
    allowed = (closure(_requirements()) | closure(list(HARNESS))) - {"botocore"}
    result = _probe(allowed)
    assert result.returncode != 0 and "not installed by the build" in result.stderr


def _probe(allowed: set[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(allowed))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
