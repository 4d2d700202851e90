"""The monitoring job on constructed windows: its statistics, its verdicts, and how it reads captures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import capture_window
import drift
import monitor
import pytest
from moto import mock_aws

from model_build.steps.monitoring_thresholds import DriftThresholds
from model_deploy.local.capture import CaptureWriter
from tests.model_build import monitoring_windows as w

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
WINDOW = ["--since", "2026-12-01T12:00:00Z", "--until", "2026-12-01T13:00:00Z"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return w.write_baseline(tmp_path_factory.mktemp("baseline"))


def run(baseline: Path, captures: Path | str, output: Path, *extra: str) -> dict:
    arguments = ["--baseline", str(baseline), "--captures", str(captures), "--output-data", str(output)]
    assert monitor.main([*arguments, *WINDOW, "--no-progress", *extra]) == 0
    report = json.loads((output / monitor.REPORT_FILE).read_text())
    assert (output / monitor.PICTURE_FILE).stat().st_size > 10_000
    violations = json.loads((output / monitor.VIOLATIONS_FILE).read_text())
    assert violations == {"violations": report["violations"]}
    return report


def checks(report: dict) -> dict[str, dict]:
    return {check["threshold"]: check for check in report["checks"]}


def test_statistics_of_identical_and_disjoint_distributions() -> None:
    assert drift.population_stability_index([10, 20, 70], [10, 20, 70]) == pytest.approx(0)
    assert drift.jensen_shannon_distance([10, 20, 70], [1, 2, 7]) == pytest.approx(0, abs=1e-9)
    assert drift.jensen_shannon_distance([10, 0, 0], [0, 0, 10]) == pytest.approx(1)
    # an emptied bin counts as half a review: large, but finite
    assert 2 < drift.population_stability_index([50, 50, 0], [0, 50, 50]) < 20
    assert drift.length_bin(0) == 0 and drift.length_bin(15) == 0 and drift.length_bin(16) == 1
    assert drift.length_bin(10_000) == len(drift.LENGTH_BIN_EDGES) - 1


def test_an_in_distribution_window_is_no_drift(baseline: Path, tmp_path: Path) -> None:
    texts = w.reviews(200, w.IN_DISTRIBUTION_LENGTHS, seed=7)
    w.write_window(tmp_path / "captures", texts, w.predictions(200, w.BASE_SHARES), NOW)
    report = run(baseline, tmp_path / "captures", tmp_path / "out")
    assert report["verdict"] == "no_drift" and report["violations"] == []
    assert report["traffic"]["requests"] == 50 and report["traffic"]["reviews"] == 200
    by_name = checks(report)
    assert by_name["max_length_psi"]["value"] < 0.05 and by_name["max_prediction_js"]["value"] < 0.02
    assert all(check["passed"] for check in report["checks"])
    assert {m["MetricName"]: m["Value"] for m in report["metrics"]}["Drift"] == 0.0


def test_much_longer_reviews_are_drift(baseline: Path, tmp_path: Path) -> None:
    texts = w.reviews(200, (70, 90, 120), seed=7)
    w.write_window(tmp_path / "captures", texts, w.predictions(200, w.BASE_SHARES), NOW)
    report = run(baseline, tmp_path / "captures", tmp_path / "out")
    assert report["verdict"] == "drift"
    failed = {check["threshold"] for check in report["checks"] if check["passed"] is False}
    assert {"max_length_psi", "max_length_js", "max_truncated_share_increase"} <= failed
    assert "max_prediction_psi" not in failed
    violation = next(v for v in report["violations"] if v["feature_name"] == "review_length_tokens")
    assert violation["constraint_check_type"] == "baseline_drift_check"
    assert "above max_length_psi 0.25" in violation["description"]
    assert report["window_profile"]["truncated_share"] == 1.0


def test_a_class_that_vanished_is_drift(baseline: Path, tmp_path: Path) -> None:
    texts = w.reviews(200, w.IN_DISTRIBUTION_LENGTHS, seed=7)
    all_negative = w.predictions(200, {"negative": 1.0})
    w.write_window(tmp_path / "captures", texts, all_negative, NOW)
    report = run(baseline, tmp_path / "captures", tmp_path / "out")
    assert report["verdict"] == "drift"
    by_name = checks(report)
    assert (
        by_name["max_prediction_psi"]["passed"] is False and by_name["max_prediction_js"]["passed"] is False
    )
    assert by_name["max_length_psi"]["passed"] is True
    assert report["window_profile"]["predicted_shares"]["positive"] == 0.0


def test_unseen_words_and_low_confidence_are_drift(baseline: Path, tmp_path: Path) -> None:
    texts = w.reviews(200, w.IN_DISTRIBUTION_LENGTHS, seed=7, words=w.UNSEEN_WORDS)
    unsure = [(name, 0.4) for name, _ in w.predictions(200, w.BASE_SHARES)]
    w.write_window(tmp_path / "captures", texts, unsure, NOW)
    by_name = checks(run(baseline, tmp_path / "captures", tmp_path / "out"))
    assert by_name["max_unseen_token_share_increase"]["window_value"] == 1.0
    assert by_name["max_unseen_token_share_increase"]["passed"] is False
    assert by_name["max_confidence_drop"]["value"] == pytest.approx(0.5)


def test_malformed_lines_are_counted_with_examples_and_never_fatal(baseline: Path, tmp_path: Path) -> None:
    texts = w.reviews(120, w.IN_DISTRIBUTION_LENGTHS, seed=7)
    bad = [
        "{not json",
        json.dumps({"eventVersion": "0"}),
        w.capture_line(["fine"], [("positive", 0.9), ("negative", 0.9)], NOW),  # two answers, one review
        w.capture_line([], None, NOW, raw_request=b"\xff\xfe not text"),  # non-UTF-8 request
        w.capture_line([" "], [], NOW),  # an empty review
    ]
    path = w.write_window(
        tmp_path / "captures", texts, w.predictions(120, w.BASE_SHARES), NOW, extra_lines=bad
    )
    report = run(baseline, tmp_path / "captures", tmp_path / "out")
    traffic = report["traffic"]
    assert traffic["malformed_by_reason"] == {
        "line not JSON": 1,
        "no captureData": 1,
        "response does not match request": 1,
    }
    assert traffic["malformed_examples"]["line not JSON"] == [f"{path}:31"]
    assert traffic["non_utf8_requests"] == 1 and traffic["empty_requests"] == 1
    assert traffic["requests"] == 32 and traffic["reviews"] == 120
    # 3 of 35 lines unreadable, 1 of 32 requests empty, 1 not UTF-8: above the data-quality limits
    assert report["verdict"] == "data_quality"
    types = {v["feature_name"]: v["constraint_check_type"] for v in report["violations"]}
    assert types == {
        "capture_lines": "data_type_check",
        "non_utf8_requests": "data_type_check",
    }
    assert checks(report)["max_empty_request_share"]["value"] == pytest.approx(1 / 32)


def test_an_empty_window_is_no_traffic_not_a_pass(baseline: Path, tmp_path: Path) -> None:
    earlier = NOW - timedelta(hours=3)  # captured, but before the window
    w.write_window(tmp_path / "captures", w.reviews(40, (5,)), w.predictions(40, w.BASE_SHARES), earlier)
    report = run(baseline, tmp_path / "captures", tmp_path / "out")
    assert report["verdict"] == "no_traffic" and report["summary"].startswith("NO TRAFFIC")
    assert report["traffic"]["capture_files"] == 0 and report["violations"] == []
    assert all(check["passed"] is None for check in report["checks"] if check["kind"] == "drift")
    metrics = {m["MetricName"]: m["Value"] for m in report["metrics"]}
    assert metrics["NoTraffic"] == 1.0 and metrics["Drift"] == 0.0 and "ReviewLengthPSI" not in metrics
    # a capture folder that does not exist yet: the same answer
    assert run(baseline, tmp_path / "nothing-yet", tmp_path / "out2")["verdict"] == "no_traffic"


def test_too_few_reviews_are_reported_but_not_judged(baseline: Path, tmp_path: Path) -> None:
    texts = w.reviews(12, (90,))  # long: would be drift with enough of them
    w.write_window(tmp_path / "captures", texts, w.predictions(12, {"negative": 1.0}), NOW)
    report = run(baseline, tmp_path / "captures", tmp_path / "out")
    assert report["verdict"] == "insufficient_traffic" and report["violations"] == []
    assert checks(report)["max_length_psi"]["passed"] is False  # measured and shown, not a violation
    lowered = run(baseline, tmp_path / "captures", tmp_path / "out2", "--thresholds", '{"min_reviews": 10}')
    assert lowered["verdict"] == "drift"


def test_reads_what_the_local_capture_writer_writes(baseline: Path, tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "data-capture", "shop-prod", "AllTraffic", 100)
    for text in w.reviews(10, (6,)):
        writer.write(json.dumps({"features": [text]}).encode(), "application/json",
                     json.dumps([{"sentiment": "positive", "probability": 0.8}]).encode(), "application/json")  # fmt: skip
    writer.write(b"first review\nsecond, with a comma", "text/csv",
                 b'{"sentiment": "neutral", "probability": 0.5}\n{"sentiment": "negative", "probability": 0.7}\n',
                 "application/jsonlines")  # fmt: skip
    writer.write(b"\xc3\x28 broken", "application/json", b"[]", "application/json")  # not UTF-8: base64
    writer.close()
    endpoint = tmp_path / "data-capture" / "shop-prod"
    args = ["--since", "1h", "--thresholds", '{"min_reviews": 1}', "--no-progress"]
    for root in (endpoint, endpoint / "AllTraffic"):  # the endpoint's folder or one variant's
        output = tmp_path / f"out-{root.name}"
        assert monitor.main(["--baseline", str(baseline), "--captures", str(root), "--output-data", str(output), *args]) == 0  # fmt: skip
        report = json.loads((output / monitor.REPORT_FILE).read_text())
        traffic = report["traffic"]
        assert (traffic["requests"], traffic["reviews"], traffic["non_utf8_requests"]) == (12, 12, 1)
        assert traffic["malformed_lines"] == 0
        assert report["window_profile"]["predicted_counts"] == {"negative": 1, "neutral": 1, "positive": 10}
    assert report["endpoint"] == "AllTraffic"  # without --endpoint: the folder's name


def test_reads_captures_from_s3_hour_by_hour(baseline: Path, tmp_path: Path) -> None:
    lines = [w.capture_line(["w1 w2 w3"], [("positive", 0.9)], NOW) for _ in range(3)]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        prefix = "data-capture/prod/shop-prod/AllTraffic"
        s3.put_object(Bucket="data", Key=f"{prefix}/2026/12/01/12/a.jsonl", Body="\n".join(lines).encode())
        s3.put_object(Bucket="data", Key=f"{prefix}/2026/12/01/09/old.jsonl", Body=lines[0].encode())
        source = capture_window.S3Captures("s3://data/data-capture/prod/shop-prod", s3)
        window = capture_window.Window(NOW.replace(minute=0), NOW.replace(minute=0) + timedelta(hours=1))
        files = [(name, list(content)) for name, content in source.files(window)]
    assert [name for name, _ in files] == [f"s3://data/{prefix}/2026/12/01/12/a.jsonl"]
    assert [capture_window.parse_line(line).reviews for line in files[0][1]] == [["w1 w2 w3"]] * 3


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ('{"max_length_psi": 0.2, "max_lenght_js": 0.1}', "unknown threshold(s) max_lenght_js"),
        ('{"max_length_js": 1.5}', "max_length_js is a share or a distance within 0-1"),
        ('{"max_length_psi": -1}', "max_length_psi must be a number of at least 0"),
        ('{"min_reviews": 0}', "min_reviews must be an integer of at least 1"),
        ("[1]", "must be a JSON object"),
    ],
)
def test_bad_thresholds_are_refused_by_name(
    baseline: Path, tmp_path: Path, thresholds: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    arguments = [
        "--baseline",
        str(baseline),
        "--captures",
        str(tmp_path),
        "--output-data",
        str(tmp_path / "o"),
    ]
    assert monitor.main([*arguments, "--thresholds", thresholds]) == 2
    assert message in caplog.text
    assert DriftThresholds().check() == []


def test_a_missing_or_foreign_baseline_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    arguments = ["--captures", str(tmp_path), "--output-data", str(tmp_path / "o")]
    assert monitor.main(["--baseline", str(tmp_path / "none"), *arguments]) == 2
    assert "no baseline.json" in caplog.text and "the evaluation step writes it" in caplog.text
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "baseline.json").write_text('{"schema": "something-else/1"}')
    assert monitor.main(["--baseline", str(tmp_path / "other"), *arguments]) == 2
    assert "schema 'something-else/1'" in caplog.text


def test_window_arguments() -> None:
    now = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    assert capture_window.parse_time("2h", now) == datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert capture_window.parse_time("2026-12-01T10:00:00", now) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    with pytest.raises(capture_window.WindowError, match="not a time"):
        capture_window.parse_time("yesterday", now)
    with pytest.raises(capture_window.WindowError, match="not a time"):
        capture_window.parse_time("-2h", now)
    for age in ("99999999h", "99999999999d"):
        with pytest.raises(capture_window.WindowError, match="before the year 1"):
            capture_window.parse_time(age, now)
    window = capture_window.Window(datetime(2026, 12, 1, 10, 30, tzinfo=UTC), now)
    assert [hour.hour for hour in window.hours()] == [10, 11, 12]
