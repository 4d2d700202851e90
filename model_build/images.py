"""The container images of the SageMaker pipeline: the Hugging Face PyTorch Deep Learning Containers.

The URIs come from ``sagemaker.core.image_uris.retrieve``, which reads the JSON bundled with the SDK, so
resolving them needs no AWS call. The version pairs below are ones that JSON lists; the pinned
``model_build/steps/requirements.txt`` is installed on top of the image by every job, so the scripts run
with the same library versions on SageMaker as in the local mode.

The training DLC is published for GPUs only. Processing and evaluation use that same image on CPU
instances (PyTorch falls back to the CPU when no CUDA device is present), so every step that tokenizes or
loads the model does it with one set of libraries.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_build.pipeline_spec import PIPELINE


@dataclass(frozen=True)
class HuggingFaceImage:
    """One Hugging Face DLC: ``transformers`` version, base PyTorch version, Python and scope."""

    transformers_version: str
    pytorch_version: str
    py_version: str
    scope: str

    def uri(self, region: str, instance_type: str) -> str:
        """The ECR URI in ``region`` for the processor type (CPU/GPU) of ``instance_type``."""
        from sagemaker.core import image_uris

        return image_uris.retrieve(
            framework="huggingface",
            region=region,
            version=self.transformers_version,
            base_framework_version=f"pytorch{self.pytorch_version}",
            py_version=self.py_version,
            instance_type=instance_type,
            image_scope=self.scope,
        )


TRAINING_IMAGE = HuggingFaceImage("5.3.0", "2.9.0", "py312", "training")
"""``huggingface-pytorch-training``: processing, training and evaluation."""

INFERENCE_IMAGE = HuggingFaceImage("5.5.3", "2.6.0", "py312", "inference")
"""``huggingface-pytorch-inference``: the image the registered model package serves with."""


def job_image_uri(region: str) -> str:
    """The image of the processing, training and evaluation jobs (the GPU build, see the module doc)."""
    return TRAINING_IMAGE.uri(region, str(PIPELINE.parameter("TrainingInstanceType").default))


def inference_image_uri(region: str) -> str:
    """The serving image, for the processor type of the ``DeployInstanceType`` default.

    The image is fixed when the pipeline is built, while the instance type stays a parameter: overriding
    ``DeployInstanceType`` with a GPU type means rebuilding the pipeline to get the GPU image.
    """
    return INFERENCE_IMAGE.uri(region, str(PIPELINE.parameter("DeployInstanceType").default))
