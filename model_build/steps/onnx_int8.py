"""The served model's int8 ONNX variant: exported, quantized, checked against the PyTorch model. Used by ``evaluate.py``.

A library of the steps folder, not a step (see ``training_data.py``). The evaluation step calls it because that is
where the PyTorch model and the test split meet: the int8 model is scored on the same batches, and it goes into
the package the pipeline registers only when it answers like the PyTorch model (:class:`ParityRule`).

- Export: ``torch.onnx.export`` with the dynamo exporter (``dynamo=True``, onnxscript) and dynamic batch and
  sequence axes. The TorchScript exporter (``dynamo=False``) traces transformers 5's attention-mask code with the
  example's shapes baked in: measured on the bundled MiniLM, its fp32 graph was off by up to 1.3 in the logits on
  inputs of another length; the dynamo graph by 2e-6.
- Quantization: ONNX Runtime's ``quantize_dynamic`` (int8 weights, activations quantized per batch at run time),
  the method ONNX Runtime documents for transformer models on CPU
  (https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html).
- Inference: ONNX Runtime's CPU provider; its intra-op threads do not spin while waiting
  (``session.intra_op.allow_spinning=0``), for the reason the handler sets ``OMP_WAIT_POLICY=PASSIVE``: a spinning
  thread burns the turn of the partner it waits for when other processes hold the cores.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("evaluate")

INT8_MODEL_FILE = "onnx/model.int8.onnx"
"""Where the package holds the int8 model, relative to the model folder. The serving handler looks for the same
path (``model_deploy/serving/inference.py`` ``ONNX_MODEL_FILE``; a test holds the two equal)."""
OUTPUT_NAME = "logits"
OPSET = 18


@dataclass(frozen=True)
class ParityRule:
    """When the int8 model may stand in for the PyTorch model, on the test split.

    The first two are the rule of issue 26 (labels and the metric the gate reads); the third bounds how far any
    one answer's probabilities may move, which the labels alone do not show (monitoring reads the confidence).
    """

    min_label_agreement: float = 0.99
    max_f1_macro_difference: float = 0.005
    max_probability_difference: float = 0.1

    def failures(self, agreement: float, f1_difference: float, probability_difference: float) -> list[str]:
        """What breaks the rule, each naming the figure and its limit; empty when it holds."""
        failures = []
        if agreement < self.min_label_agreement:
            failures.append(f"label agreement {agreement:.4f} < {self.min_label_agreement}")
        if f1_difference > self.max_f1_macro_difference:
            failures.append(f"macro-F1 difference {f1_difference:.4f} > {self.max_f1_macro_difference}")
        if probability_difference > self.max_probability_difference:
            failures.append(
                f"max probability difference {probability_difference:.4f} > {self.max_probability_difference}"
            )
        return failures


def export_int8(model: Any, tokenizer: Any, model_dir: Path) -> Path:
    """Export ``model`` (on the CPU) to ONNX and quantize it into ``model_dir/INT8_MODEL_FILE``; returns its path."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = model.to("cpu").eval()
    example = tokenizer(["an example review to trace", "a shorter one"], padding=True, return_tensors="pt")
    inputs = {name: example[name] for name in tokenizer.model_input_names if name in example}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    target = model_dir / INT8_MODEL_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onnx-") as workspace:
        fp32 = Path(workspace) / "model.onnx"
        torch.onnx.export(
            model,
            (),
            str(fp32),
            kwargs=inputs,
            input_names=list(inputs),
            output_names=[OUTPUT_NAME],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in inputs},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
        quantize_dynamic(fp32, target, weight_type=QuantType.QInt8)
    logger.info("int8 ONNX model: %s (%.1f MB)", target, target.stat().st_size / 1e6)
    return target


def session(path: Path, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session whose threads wait without spinning (``threads=0``: ONNX Runtime's choice)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def probabilities(onnx_session: Any, batches: Iterable[dict[str, Any]]) -> list[list[float]]:
    """Softmax rows of the int8 model for each padded batch (NumPy arrays or tensors), in order.

    An input the graph takes but the batch lacks (``token_type_ids`` of a BERT: the PyTorch model defaults it to
    zeros) is fed as zeros.
    """
    import numpy as np

    names = [graph_input.name for graph_input in onnx_session.get_inputs()]
    rows: list[list[float]] = []
    for batch in batches:
        arrays = {key: np.asarray(value, dtype=np.int64) for key, value in batch.items()}
        shape = arrays["input_ids"].shape
        feed = {name: arrays.get(name, np.zeros(shape, dtype=np.int64)) for name in names}
        logits = onnx_session.run([OUTPUT_NAME], feed)[0].astype(np.float64)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        rows.extend((exp / exp.sum(axis=-1, keepdims=True)).tolist())
    return rows


def parity(
    reference: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    f1_macro: Callable[[Sequence[int]], float],
    rule: ParityRule,
) -> dict[str, Any]:
    """The ``onnx_int8.parity`` entry of ``evaluation.json``: the int8 answers vs the PyTorch ones, row by row.

    ``f1_macro`` scores predicted class indices against the test labels (the caller's metric, so both models are
    scored exactly as the report scores the model).
    """
    if len(reference) != len(candidate) or not reference:
        raise ValueError(f"parity needs the same non-empty rows: {len(reference)} vs {len(candidate)}")
    reference_labels = [max(range(len(row)), key=row.__getitem__) for row in reference]
    candidate_labels = [max(range(len(row)), key=row.__getitem__) for row in candidate]
    agreement = sum(a == b for a, b in zip(reference_labels, candidate_labels, strict=True)) / len(reference)
    f1_difference = abs(f1_macro(candidate_labels) - f1_macro(reference_labels))
    probability_difference = max(
        abs(a - b)
        for left, right in zip(reference, candidate, strict=True)
        for a, b in zip(left, right, strict=True)
    )
    failures = rule.failures(agreement, f1_difference, probability_difference)
    return {
        "examples": len(reference),
        "label_agreement": {"value": agreement},
        "f1_macro_difference": {"value": f1_difference},
        "max_probability_difference": {"value": probability_difference},
        "rule": asdict(rule),
        "holds": not failures,
        "failures": failures,
    }
