"""The per-stage settings files: the shipped ones load, and a bad file names the file, the key and the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model_deploy.stage_config import STAGES, STAGES_DIR, StageConfigError, load_stage, load_stages


def test_the_shipped_stages_load_in_rollout_order() -> None:
    stages = load_stages()
    assert list(stages) == list(STAGES) == ["staging", "prod"]
    prod = stages["prod"]
    assert (
        prod.autoscaling.min_instances
        <= prod.endpoint.initial_instance_count
        <= prod.autoscaling.max_instances
    )
    assert (
        prod.monitoring.schedule_expression == "rate(1 hour)" and prod.monitoring.thresholds.min_reviews > 0
    )
    assert stages["staging"].monitoring.schedule_expression is None  # drift is watched where the traffic is
    environment = prod.serving.container_environment()
    assert environment["SAGEMAKER_TS_BATCH_SIZE"] == str(prod.serving.max_batch_size)
    assert environment["SAGEMAKER_TS_MAX_BATCH_DELAY"] == str(prod.serving.max_batch_delay_ms)


def edited(tmp_path: Path, stage: str, change) -> Path:
    folder = tmp_path / "stages"
    shutil.copytree(STAGES_DIR, folder, dirs_exist_ok=True)
    document = json.loads((folder / f"{stage}.json").read_text())
    change(document)
    (folder / f"{stage}.json").write_text(json.dumps(document))
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["endpoint"].update(instance_count=2), r"unknown key\(s\) endpoint.instance_count"),
        (lambda d: d["endpoint"].pop("instance_type"), "missing key endpoint.instance_type"),
        (
            lambda d: d["data_capture"].update(sampling_percentage="20"),
            'sampling_percentage is "20", expected int',
        ),
        (lambda d: d["data_capture"].update(sampling_percentage=True), "expected int"),
        (lambda d: d["data_capture"].update(sampling_percentage=101), "not within 0-100"),
        (lambda d: d["endpoint"].update(instance_type="m5.large"), "not a SageMaker instance type"),
        (lambda d: d["deployment"].update(traffic_routing="BLUE"), "traffic_routing 'BLUE' is not one of"),
        (lambda d: d["deployment"].update(wait_seconds=4000), "wait_seconds must be within 0-3600"),
        (lambda d: d["autoscaling"].update(min_instances=3), "initial_instance_count must be within"),
        (lambda d: d.update(stage="staging"), "'stage' is 'staging', but the file is the 'prod' stage's"),
        (
            lambda d: d["monitoring"].update(schedule_expression="every hour"),
            "monitoring: schedule_expression 'every hour' is not an EventBridge Scheduler",
        ),
        (
            lambda d: d["monitoring"]["thresholds"].update(max_length_psi="0.2"),
            'monitoring.thresholds.max_length_psi is "0.2", expected int or float',
        ),
        (
            lambda d: d["monitoring"]["thresholds"].update(max_prediction_js=2),
            "monitoring: thresholds: max_prediction_js is a share or a distance within 0-1",
        ),
        (
            lambda d: d["monitoring"]["thresholds"].update(max_psi=0.2),
            r"unknown key\(s\) monitoring.thresholds.max_psi",
        ),
        (lambda d: d["monitoring"].update(retraining="always"), "retraining 'always' is not one of"),
        (lambda d: d["monitoring"].update(window_hours=0), "monitoring: window_hours must be within 1-168"),
        (
            lambda d: d["human_review"].update(confidence_threshold=1.5),
            "human_review: confidence_threshold must be above 0 and at most 1",
        ),
        (
            lambda d: d["human_review"].update(labels_per_item=0),
            "human_review: labels_per_item must be within 1-3",
        ),
        (lambda d: d["human_review"].update(sample_share="5%"), 'human_review.sample_share is "5%"'),
        (lambda d: d["human_review"].update(reviewers=3), r"unknown key\(s\) human_review.reviewers"),
    ],
)
def test_a_bad_prod_file_is_refused_with_the_file_and_the_key(tmp_path: Path, change, message: str) -> None:
    folder = edited(tmp_path, "prod", change)
    with pytest.raises(StageConfigError, match=message) as refused:
        load_stage("prod", folder)
    assert str(folder / "prod.json") in str(refused.value)


def test_a_canary_smaller_than_one_instance_is_refused(tmp_path: Path) -> None:
    def one_instance_canary(document: dict) -> None:
        document["endpoint"]["initial_instance_count"] = 1
        document["autoscaling"]["min_instances"] = 1
        document["deployment"]["traffic_routing"] = "CANARY"

    with pytest.raises(StageConfigError, match="less than one instance; use ALL_AT_ONCE"):
        load_stage("staging", edited(tmp_path, "staging", one_instance_canary))


def test_unknown_stages_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(StageConfigError, match="unknown stage 'qa'"):
        load_stage("qa")
    (tmp_path / "staging.json").write_text("{not json")
    with pytest.raises(StageConfigError, match="not valid JSON"):
        load_stage("staging", tmp_path)
    with pytest.raises(StageConfigError, match="no such stage file"):
        load_stage("prod", tmp_path)
