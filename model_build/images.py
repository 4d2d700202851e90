"""Every container image of the project, chosen here: from one framework version and the instance type.

A model must be served with the torch and transformers it was trained with, and a job must get the image
built for its instance (a CUDA image on a CPU instance is gigabytes of pull for nothing; a CPU image on a GPU
instance trains on the CPU). So there is one :data:`FRAMEWORK` (torch, transformers, Python), and each
image is a function of it, of the image's scope (``training`` for processing, training and evaluation;
``inference`` for serving) and of the instance type's processor (:func:`processor`: ``ml.g*`` and ``ml.p*``
are GPU instances, every other x86 family is CPU).

The images are the AWS Deep Learning Containers for PyTorch (``pytorch-training``, ``pytorch-inference``):
the only SageMaker framework images published for both CPU and GPU in both scopes. The Hugging Face DLCs
are not: ``huggingface-pytorch-training`` exists for GPUs only, and no training and inference pair of them
shares a PyTorch version (SDK 3.27 lists training 5.3.0 on torch 2.9.0, inference 5.5.3 on torch 2.6.0).
The PyTorch DLCs bring torch, numpy and boto3 (the SageMaker SDK v2 and the AWS CLI are in the image);
transformers comes from the pinned ``requirements.txt`` every job installs (``model_build/steps``) and the
serving container installs (``model.tar.gz/code``), so it is the same on both sides by construction, and
tests hold both files to :data:`FRAMEWORK`.

Sources (looked up 2026-12):

- URIs: ``sagemaker.core.image_uris.retrieve(framework="pytorch", ...)``, which reads the JSON bundled with
  the SDK (``sagemaker/core/image_uri_config/pytorch.json``), so resolving needs no AWS call. PyTorch 2.6.0
  is the newest version that file lists for ``inference`` (CPU and GPU, py312); ``training`` lists it too.
- torch 2.6.0 is also the oldest transformers 5.23 accepts: its metadata requires ``torch>=2.6``.
- Image contents: aws/deep-learning-containers ``pytorch/training/docker/2.6/py3/Dockerfile.sagemaker.cpu.
  core_packages.json`` (torch 2.6.0, ``awscli<2``, ``sagemaker>=2,<3``) and ``pytorch/inference/docker/2.6``.
- The serving container pip installs ``<code dir>/requirements.txt`` before TorchServe starts
  (aws/sagemaker-pytorch-inference-toolkit ``torchserve.py``, ``_install_requirements``).

A definition fixes each image when it is built, from the instance type it is built with (the parameter's
default), while the instance types stay parameters: an execution started with another instance type of the
other processor kind would meet the wrong image, so :func:`override_problems` refuses such a start (the
runner checks before calling AWS). Switching kinds means building with that default.

Importing this module does not import the SageMaker SDK; resolving a URI does (the local mode never does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from model_build.pipeline_spec import PipelineSpec

Processor = Literal["cpu", "gpu"]
Scope = Literal["training", "inference"]

GPU_FAMILY_LETTERS = ("g", "p")
"""``ml.g4dn``, ``ml.g5``, ``ml.g6``, ``ml.p3``, ``ml.p4d``, ``ml.p5``...: NVIDIA GPUs."""


@dataclass(frozen=True)
class Framework:
    """The one set of versions every job and the serving container run."""

    torch: str
    transformers: str
    python: str
    """The DLC's Python, as the SDK spells it (``py312``)."""


FRAMEWORK = Framework(torch="2.6.0", transformers="5.23.0", python="py312")


class ImageMismatch(ValueError):
    """An image that does not fit its instance type, or another framework version than :data:`FRAMEWORK`."""


_FAMILY = re.compile(r"^ml\.(?P<family>[a-z]+)(?P<generation>\d+)(?P<options>[a-z-]*)\.[0-9a-z-]+$")


def processor(instance_type: str) -> Processor:
    """``gpu`` for ``ml.g*`` and ``ml.p*``, ``cpu`` for the other x86 families; anything else is refused.

    Inferentia and Trainium (``ml.inf*``, ``ml.trn*``) need Neuron images, and Graviton (``ml.c7g``...) ARM
    ones, which this project does not build for: they are refused with the reason rather than given an
    image that cannot start on them.
    """
    match = _FAMILY.match(instance_type)
    if match is None:
        raise ImageMismatch(f"{instance_type!r} is not a SageMaker instance type (ml.<family>.<size>)")
    family, options = match["family"], match["options"]
    if family in ("inf", "trn"):
        raise ImageMismatch(
            f"{instance_type}: Inferentia/Trainium instances need Neuron images; not supported"
        )
    if family.startswith(GPU_FAMILY_LETTERS):
        return "gpu"
    if "g" in options:
        raise ImageMismatch(f"{instance_type}: Graviton (ARM) instances need ARM images; not supported")
    return "cpu"


def image_uri(region: str, instance_type: str, scope: Scope, framework: Framework = FRAMEWORK) -> str:
    """The DLC of ``scope`` for ``instance_type``'s processor, checked to fit it (see the module doc)."""
    from sagemaker.core import image_uris

    uri = image_uris.retrieve(
        framework="pytorch",
        region=region,
        version=framework.torch,
        py_version=framework.python,
        instance_type=instance_type,
        image_scope=scope,
    )
    check_fits(uri, instance_type, framework)
    return uri


def job_image_uri(region: str, instance_type: str) -> str:
    """The image of a processing, training or evaluation job on ``instance_type``."""
    return image_uri(region, instance_type, "training")


def serving_image_uri(region: str, instance_type: str) -> str:
    """The image a model package serves with on ``instance_type``."""
    return image_uri(region, instance_type, "inference")


@dataclass(frozen=True)
class ImageTag:
    """What a DLC URI says: ``<registry>/pytorch-<scope>:<torch>-<cpu|gpu>-<py>``."""

    scope: str
    torch: str
    processor: str
    python: str


_TAG = re.compile(
    r"/pytorch-(?P<scope>training|inference):(?P<torch>[0-9.]+)-(?P<processor>cpu|gpu)-(?P<python>py\d+)"
)


def parse(uri: str) -> ImageTag:
    """The scope, torch version, processor and Python of a PyTorch DLC URI; anything else is refused."""
    match = _TAG.search(uri)
    if match is None:
        raise ImageMismatch(f"{uri!r} is not a PyTorch Deep Learning Container image (pytorch-<scope>:<tag>)")
    return ImageTag(match["scope"], match["torch"], match["processor"], match["python"])


def check_fits(uri: str, instance_type: str, framework: Framework | None = FRAMEWORK) -> None:
    """Raise :class:`ImageMismatch` unless ``uri`` is built for ``instance_type`` and ``framework``.

    ``framework=None`` checks the processor only: a registered model keeps the image (and torch) it was
    trained with, which an older approved version may have from an older :data:`FRAMEWORK`.
    """
    tag = parse(uri)
    wanted = processor(instance_type)
    if tag.processor != wanted:
        raise ImageMismatch(
            f"{uri} is a {tag.processor.upper()} image but {instance_type} is a {wanted.upper()} instance; "
            f"choose images with model_build.images.image_uri(region, instance_type, scope)"
        )
    if framework is not None and (tag.torch, tag.python) != (framework.torch, framework.python):
        raise ImageMismatch(
            f"{uri} has torch {tag.torch} / {tag.python}, not the project's torch {framework.torch} / "
            f"{framework.python} (model_build.images.FRAMEWORK)"
        )


def instance_type_parameters(spec: PipelineSpec) -> dict[str, str]:
    """Parameter name -> the steps whose image it chooses, for every parameter used as an instance type."""
    from model_build.pipeline_spec import Param

    found: dict[str, list[str]] = {}
    for step in spec.steps:
        for value in (getattr(step, "instance_type", None), getattr(step, "inference_instance_type", None)):
            if isinstance(value, Param):
                found.setdefault(value.name, []).append(step.name)
    return {name: ", ".join(steps) for name, steps in found.items()}


def override_problems(spec: PipelineSpec, overrides: Mapping[str, object]) -> list[str]:
    """Why starting a definition built from ``spec``'s defaults with ``overrides`` would mismatch an image."""
    problems = []
    for name, steps in instance_type_parameters(spec).items():
        if name not in overrides:
            continue
        default, wanted = str(spec.parameter(name).default), str(overrides[name])
        try:
            kind, built_for = processor(wanted), processor(default)
        except ImageMismatch as error:
            problems.append(f"{name}: {error}")
            continue
        if kind != built_for:
            problems.append(
                f"{name}={wanted} is a {kind.upper()} instance, but the images of {steps} are "
                f"{built_for.upper()} images (chosen for the default {default}); an execution may change the "
                f"instance type within its kind only: to switch, change the default in model_build/pipeline_spec.py"
            )
    return problems
