"""Images: one framework version everywhere, and each image built for the processor of its instance type."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from model_build import images
from model_deploy.stage_config import load_stages

REGION = "us-east-1"


@pytest.mark.parametrize(
    ("instance_type", "processor"),
    [
        ("ml.g5.2xlarge", "gpu"),
        ("ml.g4dn.xlarge", "gpu"),
        ("ml.g6e.12xlarge", "gpu"),
        ("ml.p4d.24xlarge", "gpu"),
        ("ml.p5.48xlarge", "gpu"),
        ("ml.c5.2xlarge", "cpu"),
        ("ml.m5.large", "cpu"),
        ("ml.m6i.xlarge", "cpu"),
        ("ml.r5d.4xlarge", "cpu"),
        ("ml.t3.medium", "cpu"),
    ],
)
def test_g_and_p_families_are_gpu_instances_the_rest_cpu(instance_type: str, processor: str) -> None:
    assert images.processor(instance_type) == processor


@pytest.mark.parametrize(
    ("instance_type", "reason"),
    [
        ("ml.inf2.xlarge", "Neuron"),
        ("ml.trn1.2xlarge", "Neuron"),
        ("ml.c7g.xlarge", "Graviton"),
        ("ml.m6gd.large", "Graviton"),
        ("c5.2xlarge", "not a SageMaker instance type"),
        ("ml.m5", "not a SageMaker instance type"),
    ],
)
def test_instances_no_image_fits_are_refused_with_the_reason(instance_type: str, reason: str) -> None:
    with pytest.raises(images.ImageMismatch, match=reason):
        images.processor(instance_type)


@pytest.mark.parametrize("scope", ["training", "inference"])
@pytest.mark.parametrize(
    "instance_type", ["ml.c5.2xlarge", "ml.m5.large", "ml.g5.2xlarge", "ml.p4d.24xlarge"]
)
def test_each_image_is_the_frameworks_for_its_scope_and_processor(
    scope: images.Scope, instance_type: str
) -> None:
    uri = images.image_uri(REGION, instance_type, scope)
    assert uri.startswith(f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-{scope}:")
    assert images.parse(uri) == images.ImageTag(
        scope, images.FRAMEWORK.torch, images.processor(instance_type), images.FRAMEWORK.python
    )


def test_a_gpu_image_on_a_cpu_instance_and_the_reverse_are_refused() -> None:
    gpu = images.image_uri(REGION, "ml.g5.2xlarge", "training")
    cpu = images.image_uri(REGION, "ml.m5.large", "inference")
    with pytest.raises(
        images.ImageMismatch, match=re.escape("GPU image but ml.c5.2xlarge is a CPU instance")
    ):
        images.check_fits(gpu, "ml.c5.2xlarge")
    with pytest.raises(images.ImageMismatch, match=re.escape("CPU image but ml.g5.xlarge is a GPU instance")):
        images.check_fits(cpu, "ml.g5.xlarge")


def test_an_image_of_another_torch_version_is_refused() -> None:
    older = images.Framework(torch="2.5.1", transformers=images.FRAMEWORK.transformers, python="py311")
    uri = images.image_uri(REGION, "ml.m5.large", "inference", older)
    with pytest.raises(
        images.ImageMismatch, match=re.escape("torch 2.5.1 / py311, not the project's torch 2.6.0")
    ):
        images.check_fits(uri, "ml.m5.large")
    with pytest.raises(images.ImageMismatch, match="not a PyTorch Deep Learning Container"):
        images.parse("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.6.0-cpu")


def pinned(path: Path, package: str) -> str:
    """The ``==`` version of ``package`` in a requirements file; fails when it is not pinned there."""
    for line in path.read_text().splitlines():
        match = re.fullmatch(rf"{re.escape(package)}==(\S+)", line.strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{path} does not pin {package}")


def test_training_serving_and_the_tests_install_the_frameworks_transformers(repo_root: Path) -> None:
    """The jobs install model_build/steps/requirements.txt, the serving container model_deploy/serving's."""
    for requirements in (
        repo_root / "model_build" / "steps" / "requirements.txt",
        repo_root / "model_deploy" / "serving" / "requirements.txt",
        repo_root / "requirements.txt",
    ):
        assert pinned(requirements, "transformers") == images.FRAMEWORK.transformers, requirements


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


MODEL_LIBRARIES = ("transformers", "tokenizers", "safetensors", "onnxruntime")
"""What saves and loads the model, its tokenizer and its int8 ONNX variant: pinned alike wherever a model is
trained, packaged or served."""


def test_serving_installs_the_model_libraries_training_installs(repo_root: Path) -> None:
    training = repo_root / "model_build" / "steps" / "requirements.txt"
    serving = repo_root / "model_deploy" / "serving" / "requirements.txt"
    for package in MODEL_LIBRARIES:
        assert (
            pinned(serving, package)
            == pinned(training, package)
            == pinned(repo_root / "requirements.txt", package)
        )


def test_the_pinned_transformers_accepts_the_images_torch() -> None:
    """transformers' own metadata says which torch it supports (``torch>=2.6; extra == "torch"``)."""
    bounds = {
        match.group(1)
        for text in importlib.metadata.requires("transformers") or []
        if (match := re.fullmatch(r"torch\s*>=\s*([0-9.]+)\s*(;.*)?", text))
    }
    assert bounds, "transformers declares no torch>= requirement to check against"
    assert all(version(images.FRAMEWORK.torch) >= version(bound) for bound in bounds), bounds
    assert importlib.metadata.version("transformers") == images.FRAMEWORK.transformers


def test_the_stages_serve_on_instances_of_the_registered_images_processor() -> None:
    """The package's image is chosen for DeployInstanceType; every stage must run that processor type."""
    from model_build.pipeline_spec import PIPELINE

    registered = images.processor(str(PIPELINE.parameter("DeployInstanceType").default))
    for stage, config in load_stages().items():
        assert images.processor(config.endpoint.instance_type) == registered, stage


def test_an_execution_may_not_switch_an_instance_type_to_the_other_processor_kind() -> None:
    """The definition's images are fixed for its default instance types; a start may only stay in kind."""
    from model_build.pipeline_spec import CHECK_DATA, EVALUATE, PIPELINE, PROCESS, REGISTER, TRAIN

    assert images.instance_type_parameters(PIPELINE) == {
        "ProcessingInstanceType": f"{CHECK_DATA}, {PROCESS}, {EVALUATE}",
        "TrainingInstanceType": TRAIN,
        "DeployInstanceType": REGISTER,
    }
    within_kind = {"ProcessingInstanceType": "ml.m5.4xlarge", "TrainingInstanceType": "ml.p4d.24xlarge"}
    assert images.override_problems(PIPELINE, within_kind) == []
    problems = images.override_problems(
        PIPELINE,
        {"TrainingInstanceType": "ml.c5.4xlarge", "DeployInstanceType": "ml.inf2.xlarge", "Epochs": 1},
    )
    assert problems == [
        f"TrainingInstanceType=ml.c5.4xlarge is a CPU instance, but the images of {TRAIN} are GPU images "
        "(chosen for the default ml.g5.2xlarge); an execution may change the instance type within its kind "
        "only: to switch, change the default in model_build/pipeline_spec.py",
        "DeployInstanceType: ml.inf2.xlarge: Inferentia/Trainium instances need Neuron images; not supported",
    ]
