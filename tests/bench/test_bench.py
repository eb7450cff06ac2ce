"""The bench harness's own logic: statistics, matching texts to events, and the report,
so `make test` catches a broken `make bench` without running the stack."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import parse_args
from bench.load import Sent, Text, match_texts, trim_tail
from bench.report import write_results
from bench.scenarios import Step, told, workflow_cache_figures
from bench.stack import summed_metrics
from bench.stats import max_in_window, per_second_counts, percentile, summarize
from workflows.model import CadEvent, CadEventType


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="percentile"):
        percentile(values, 101)


def test_summary_is_in_milliseconds() -> None:
    summary = summarize([0.1, 0.2, 0.3])
    assert (summary.count, summary.p50, summary.max) == (3, 200.0, 300.0)
    assert summarize([]).as_dict()["p99"] is None


def test_sends_per_second() -> None:
    times = [10.0, 10.9, 11.5, 13.2]
    assert per_second_counts(times) == [2, 1, 0, 1]
    assert max_in_window(times, 1.0) == 2
    assert max_in_window([0.0, 1.0, 2.0], 1.0) == 1


def event(incident: str, kind: CadEventType, minute: int) -> CadEvent:
    return CadEvent(
        agency="example",
        incident_id=incident,
        event_type=kind,
        occurred_at=datetime(2025, 10, 16, 9, minute, tzinfo=UTC),
        event_id=f"{incident}:{kind.value}",
    )


def test_texts_are_matched_to_the_events_that_made_them_due() -> None:
    sent = [
        Sent(event("A", CadEventType.CREATED, 0), submitted=100.0, accepted=100.01),
        Sent(event("A", CadEventType.ENROUTE, 1), submitted=101.0, accepted=101.01),
        Sent(event("A", CadEventType.CLEARED, 2), submitted=102.0, accepted=102.01),
        Sent(event("B", CadEventType.CREATED, 0), submitted=100.5, error="refused"),
    ]

    def text(incident: str, kind: str, at: float | None) -> Text:
        return Text(f"call/example/{incident}", incident, kind, "sent", 0.0, at)

    texts = [
        text("A", "confirmation", 100.12),
        text("A", "assigned", 101.2),
        text("A", "cleared", 102.05),
        text("A", "survey", 130.0),  # a timer's, not an event's
        text("A", "delayed", None),
        text("B", "confirmation", 101.0),  # its event was refused: nothing to measure
    ]
    matched = {m.text.kind: round(m.seconds, 3) for m in match_texts(texts, sent)}
    assert matched == {"confirmation": 0.12, "assigned": 0.2, "cleared": 0.05}


def test_a_text_skipped_for_the_closing_note_is_told_when_the_closing_note_went() -> None:
    sent = [
        Sent(event("A", CadEventType.CREATED, 0), submitted=100.0),
        Sent(event("A", CadEventType.ASSIGNED, 0), submitted=100.0),
        Sent(event("A", CadEventType.CLEARED, 1), submitted=101.0),
        Sent(event("B", CadEventType.CREATED, 0), submitted=100.0),
        Sent(event("B", CadEventType.CLEARED, 1), submitted=101.0),
    ]
    step = Step(rate=1.0, calls=2, seconds=1.0, sent=sent)
    # A's confirmation went; its update was overtaken by the closure. B's closing note
    # has not gone yet, so its confirmation is untold however the side behaves.
    handoffs = {"A:created": 100.1, "A:cleared": 101.3}

    assert told(step, handoffs, supersedable=True) == {
        "A:created": 100.1,
        "A:assigned": 101.3,
        "A:cleared": 101.3,
    }
    assert told(step, handoffs, supersedable=False) == {"A:created": 100.1, "A:cleared": 101.3}


def test_a_day_is_cut_after_its_hours() -> None:
    events = [event("A", CadEventType.CREATED, 0), event("A", CadEventType.CLEARED, 59)]
    kept, dropped = trim_tail(events, hours=0.5)
    assert (len(kept), dropped) == (1, 1)


def test_options() -> None:
    assert parse_args(["--quick", "--only", "pacing"]).only == "pacing"
    with pytest.raises(SystemExit):
        parse_args(["--only", "nonsense"])


def summary(p50: float) -> dict[str, Any]:
    return {"count": 3, "p50": p50, "p95": p50 * 2, "p99": p50 * 3, "max": p50 * 4, "mean": p50}


def fake_results() -> dict[str, Any]:
    stages = ("ingest", "temporal_start", "eligibility", "send_activity")
    run = {
        "speed": 360.0,
        "transport": "python",
        "event_to_handoff_ms": summary(100.0),
        "accepted_ms": summary(20.0),
        "replay_seconds": 10.0,
        "scheduled_seconds": 10.0,
        "worker_peak_rss_mb": 120.0,
        "first_text_breakdown_ms": {stage: summary(25.0) for stage in stages},
        "samples": {"latency": [[0.5, 90.0], [1.0, 110.0]]},
    }
    step = {"offered_calls_per_second": 1.0, "latency_ms": summary(200.0), "passed": True}
    return {
        "started_at": "2026-01-01T00:00:00+00:00",
        "quick": True,
        "wall_seconds": 60.0,
        "machine": {
            "cores": 2,
            "cpu": "test",
            "memory_mb": 1024,
            "platform": "linux",
            "python": "3.11",
            "sqlite": "3",
            "temporal_cli": "temporal",
            "packages": {"temporalio": "1"},
            "load_average_at_start": [0.1, 0.1, 0.1],
        },
        "settings": {"stack": "test stack"},
        "scenarios": {
            "latency": {
                "source": "a day",
                "events": 2,
                "calls": 1,
                "cad_hours": 2,
                "events_trimmed": 0,
                "runs": [run],
            },
            "throughput": {
                "step_seconds": 5,
                "p99_limit_ms": 2000,
                "call_shape": "c",
                "floor_shape": "f",
                "time_scale": 7200,
                "callerloop_steps": [step],
                "floor_steps": [step],
                "callerloop_calls_per_second": 1.0,
                "floor_calls_per_second": 1.0,
                "ratio": 1.0,
            },
            "scale": {
                "source": "days",
                "calls": 10,
                "events": 30,
                "total_seconds": 60.0,
                "accept_seconds": 5.0,
                "calls_per_second": 0.2,
                "events_per_second": 0.5,
                "texts": {"cleared": 3},
                "texts_per_second": 0.05,
                "worker_peak_rss_mb": 130.0,
                "app_db_bytes_per_call": 4000,
                "app_db_mb": 1.0,
                "temporal_db_bytes_per_call": 20000,
                "temporal_db_mb": 2.0,
                "calls_waiting": 5,
                "worker_rss_waiting_mb": 125.0,
                "synthetic_calls_added_to_wait": 0,
                "samples": {"rss": [[0.0, 100.0], [2.0, 130.0]]},
            },
            "pacing": {
                "calls": 3,
                "limit_per_second": 1.0,
                "max_in_any_second": 1,
                "max_in_any_1s_window": 1,
                "min_gap_s": 1.0,
                "median_gap_s": 1.0,
                "drain_per_second": 1.0,
                "samples": {"handoffs": [1.0, 2.0, 3.0]},
                "wall_seconds": 40.0,
                "cpu_steal_seconds": 12.5,
            },
        },
        "errors": {},
    }


def test_the_report_is_written_with_its_plots(tmp_path: Path) -> None:
    report = write_results(fake_results(), tmp_path, "20260101T000000Z")
    text = report.read_text()
    assert "## 1. Latency" in text and "ratio 1.0" in text and "## 4. Sender pacing" in text
    assert "(steal, all cores) during each scenario: pacing 12.5 s of 40 s." in text
    latest = tmp_path / "latest"
    for plot in ("latency.png", "breakdown.png", "throughput.png", "scale_rss.png", "pacing.png"):
        assert (latest / plot).stat().st_size > 1000
    slim = json.loads((latest / "results.json").read_text())
    assert "samples" not in slim["scenarios"]["pacing"]
    assert (tmp_path / "20260101T000000Z.json").exists()


def test_the_worker_cache_figures_count_replays_of_evicted_calls() -> None:
    metrics = {
        "temporal_workflow_task_queue_poll_succeed": 130.0,
        "temporal_sticky_cache_hit": 20.0,
        "temporal_sticky_cache_total_forced_eviction": 40.0,
        "temporal_workflow_task_schedule_to_start_latency_sum": 1300.0,
        "temporal_workflow_task_schedule_to_start_latency_count": 130.0,
        "temporal_workflow_task_execution_latency_sum": 650.0,
        "temporal_workflow_task_execution_latency_count": 130.0,
    }
    figures = workflow_cache_figures(metrics, calls=100)
    # 110 tasks brought a whole history: 100 calls' first tasks and 10 evicted calls.
    assert figures["replayed_after_eviction"] == 10
    assert figures["forced_evictions"] == 40
    assert (figures["task_wait_ms_mean"], figures["task_run_ms_mean"]) == (10.0, 5.0)
    assert figures["local_activity_ms_mean"] is None
    assert workflow_cache_figures({}, calls=100) == {}


def test_the_report_says_how_the_worker_cache_did(tmp_path: Path) -> None:
    results = fake_results()
    results["scenarios"]["scale"]["worker_sdk"] = {
        "workflow_tasks": 130,
        "from_cache": 20,
        "replayed_after_eviction": 10,
        "forced_evictions": 40,
        "task_wait_ms_mean": 10.0,
        "task_run_ms_mean": 5.0,
        "local_activity_ms_mean": 2.0,
    }
    text = write_results(results, tmp_path, "20260101T000000Z").read_text()
    assert "10 replayed an evicted call (40 evictions)" in text


def test_the_worker_metrics_are_summed_over_their_labels_by_their_exposed_names() -> None:
    exposition = "\n".join(
        [
            "# TYPE temporal_sticky_cache_hit counter",
            'temporal_sticky_cache_hit{task_queue="a"} 3',
            'temporal_sticky_cache_hit{task_queue="b"} 4',
            "# TYPE temporal_workflow_task_execution_latency histogram",
            'temporal_workflow_task_execution_latency_bucket{le="+Inf"} 2',
            "temporal_workflow_task_execution_latency_sum 30",
            "temporal_workflow_task_execution_latency_count 2",
            "",
        ]
    )
    assert summed_metrics(exposition) == {
        "temporal_sticky_cache_hit": 7.0,
        "temporal_workflow_task_execution_latency_sum": 30.0,
        "temporal_workflow_task_execution_latency_count": 2.0,
    }
