"""A toy pipeline with the real pipeline's shape and more (process -> train -> evaluate -> a condition whose
true branch is a second condition -> register, or one of two fail steps), with scripts that take
milliseconds, to test the runners' mechanics without fine-tuning a model.

``make_repo(folder)`` writes the scripts where the runner looks for them (``<repo>/model_build/steps``);
``python tests/pipelines/toy_pipeline.py REPO RUN_DIR [NAME=VALUE ...]`` runs it, as a process a test can
interrupt.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model_build.pipeline_spec import (
    PROCESSING_INPUT,
    PROCESSING_OUTPUT,
    Check,
    ConditionStep,
    Config,
    FailStep,
    JsonValue,
    Param,
    Parameter,
    PipelineSpec,
    ProcessingInput,
    ProcessingOutput,
    ProcessingStep,
    PropertyFile,
    RegisterStep,
    StepOutput,
    TrainingStep,
)

PREP = """
import argparse, pathlib, shutil
parser = argparse.ArgumentParser()
parser.add_argument("--input-data"); parser.add_argument("--output-data"); parser.add_argument("--factor")
args = parser.parse_args()
out = pathlib.Path(args.output_data) / "train"
text = "".join(p.read_text() for p in sorted(pathlib.Path(args.input_data).iterdir()))
(out / "data.txt").write_text(text * int(args.factor))
print("prepared", len(text), "characters")
"""

FIT = """
import argparse, json, os, pathlib, signal, time
parser = argparse.ArgumentParser()
parser.add_argument("--accuracy"); parser.add_argument("--sleep", type=float); parser.add_argument("--die", default="")
parser.add_argument("--checkpoint-dir")
args = parser.parse_args()
marker = pathlib.Path(os.environ["TOY_MARKERS"]) / "fit-started"
marker.parent.mkdir(parents=True, exist_ok=True)
if args.sleep:  # a worker of its own, as torchrun or a DataLoader starts: stopping the step must stop it too
    import subprocess, sys
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (marker.parent / "worker").write_text(str(worker.pid))
marker.write_text(str(os.getpid()))
if args.die == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if args.die == "error":
    raise SystemExit("fit: bad things happened")
time.sleep(args.sleep)
data = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"], "data.txt").read_text()
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "weights.json").write_text(json.dumps({"accuracy": float(args.accuracy), "size": len(data)}))
(model / "code").mkdir()
(model / "code" / "inference.py").write_text(pathlib.Path(os.environ["SM_CHANNEL_CODE"], "handler.py").read_text())
for epoch in (1, 2):
    print(f"epoch={epoch} train_loss={1 / epoch:.3f} val_loss={1.5 / epoch:.3f} val_acc={args.accuracy}")
"""

SCORE = """
import argparse, json, pathlib, tarfile
parser = argparse.ArgumentParser()
parser.add_argument("--model-path"); parser.add_argument("--output-data")
args = parser.parse_args()
with tarfile.open(pathlib.Path(args.model_path) / "model.tar.gz") as tar:
    weights = json.load(tar.extractfile("weights.json"))
out = pathlib.Path(args.output_data)
(out / "evaluation.json").write_text(json.dumps({"metrics": {"accuracy": {"value": weights["accuracy"]}, "f1": {"value": 0.5}}}))
(out / "picture.png").write_bytes(b"not really a png")
"""

SPEC = PipelineSpec(
    parameters=(
        Parameter("InputDataUrl", "String", "", "Input.", local_default="data/input.txt", input_data=True),
        Parameter("Factor", "Integer", 2, "Copies of the input."),
        Parameter("Accuracy", "Float", 0.9, "What the toy model scores."),
        Parameter("Sleep", "Float", 0.0, "Seconds the training sleeps."),
        Parameter("Die", "String", "", "'kill' or 'error' to make training fail."),
        Parameter("MinAccuracy", "Float", 0.5, "Threshold."),
        Parameter("MinF1", "Float", 0.4, "The second gate's threshold."),
        Parameter("ModelApprovalStatus", "String", "PendingManualApproval", "Status."),
    ),
    steps=(
        ProcessingStep(
            name="Prep",
            script="prep.py",
            instance_type="ml.m5.large",
            inputs=(ProcessingInput("raw", Param("InputDataUrl"), f"{PROCESSING_INPUT}/data"),),
            outputs=(ProcessingOutput("train", f"{PROCESSING_OUTPUT}/train"),),
            arguments={
                "--input-data": f"{PROCESSING_INPUT}/data",
                "--output-data": PROCESSING_OUTPUT,
                "--factor": Param("Factor"),
            },
        ),
        TrainingStep(
            name="Fit",
            script="fit.py",
            instance_type="ml.m5.large",
            channels={"train": StepOutput("Prep", "train"), "code": "serving"},
            hyperparameters={"accuracy": Param("Accuracy"), "sleep": Param("Sleep"), "die": Param("Die")},
            metric_definitions=(("validation:accuracy", r"val_acc=([0-9.]+)"),),
        ),
        ProcessingStep(
            name="Score",
            script="score.py",
            instance_type="ml.m5.large",
            inputs=(ProcessingInput("model", StepOutput("Fit", "model"), f"{PROCESSING_INPUT}/model"),),
            outputs=(ProcessingOutput("evaluation", f"{PROCESSING_OUTPUT}/evaluation"),),
            arguments={
                "--model-path": f"{PROCESSING_INPUT}/model",
                "--output-data": f"{PROCESSING_OUTPUT}/evaluation",
            },
            property_files=(PropertyFile("Report", "evaluation", "evaluation.json"),),
        ),
        ConditionStep(
            name="Check",
            checks=(
                Check(
                    "accuracy",
                    JsonValue("Score", "Report", "metrics.accuracy.value"),
                    ">=",
                    Param("MinAccuracy"),
                ),
            ),
            if_true=("CheckF1",),
            if_false=("Fail",),
        ),
        ConditionStep(
            name="CheckF1",
            checks=(Check("F1", JsonValue("Score", "Report", "metrics.f1.value"), ">=", Param("MinF1")),),
            if_true=("Register",),
            if_false=("FailF1",),
        ),
        RegisterStep(
            name="Register",
            model=StepOutput("Fit", "model"),
            model_package_group=Config("model_package_group_name"),
            approval_status=Param("ModelApprovalStatus"),
            metrics_report=StepOutput("Score", "evaluation"),
            metrics_file="evaluation.json",
            content_types=("application/json",),
            response_types=("application/json",),
            inference_instance_type="ml.m5.large",
        ),
        FailStep(
            name="Fail",
            message=(
                "Accuracy ",
                JsonValue("Score", "Report", "metrics.accuracy.value"),
                " is below ",
                Param("MinAccuracy"),
                ".",
            ),
        ),
        FailStep(
            name="FailF1",
            message=(
                "F1 ",
                JsonValue("Score", "Report", "metrics.f1.value"),
                " is below ",
                Param("MinF1"),
                ".",
            ),
        ),
    ),
)


def make_repo(folder: Path) -> Path:
    """A repository holding the toy scripts, the serving code and the input the toy spec names."""
    steps = folder / "model_build" / "steps"
    steps.mkdir(parents=True, exist_ok=True)
    for name, code in (("prep.py", PREP), ("fit.py", FIT), ("score.py", SCORE)):
        (steps / name).write_text(code)
    (folder / "serving").mkdir(exist_ok=True)
    (folder / "serving" / "handler.py").write_text("def model_fn(model_dir):\n    return model_dir\n")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "input.txt").write_text("one review\nanother review\n")
    return folder


if __name__ == "__main__":
    from model_build.parameters import parse_assignments
    from pipelines.local.workspace import Workspace
    from pipelines.runners.local import LocalRunner

    repo, run_dir, *assignments = sys.argv[1:]
    runner = LocalRunner(Workspace.open(Path(run_dir)), SPEC, repo_root=Path(repo))
    record = runner.run(parse_assignments(SPEC, assignments))
    sys.exit(0 if record.status == "Succeeded" else 1)
