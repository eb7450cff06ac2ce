"""Writing a bench run: `<timestamp>.json`, and `<timestamp>/report.md` with PNG plots,
copied to `latest/` (the one docs/performance.md quotes)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.history import STAGES

DPI = 72


def write_results(results: Mapping[str, Any], folder: Path, stamp: str) -> Path:
    """The JSON, the report and plots; returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stamp}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    run_dir = folder / stamp
    run_dir.mkdir(exist_ok=True)
    plots = make_plots(results, run_dir)
    report = run_dir / "report.md"
    report.write_text(render_markdown(results, plots))
    latest = folder / "latest"
    if latest.exists():
        shutil.rmtree(latest)
    shutil.copytree(run_dir, latest)
    (latest / "results.json").write_text(json.dumps(_without_samples(results), indent=1) + "\n")
    return report


def _without_samples(value: Any) -> Any:
    """The results without the raw samples the plots use (keeps committed files small)."""
    if isinstance(value, Mapping):
        return {k: _without_samples(v) for k, v in value.items() if k != "samples"}
    if isinstance(value, list):
        return [_without_samples(v) for v in value]
    return value


# --- plots ---------------------------------------------------------------------------------


def make_plots(results: Mapping[str, Any], folder: Path) -> dict[str, str]:
    scenarios = results.get("scenarios", {})
    plots: dict[str, str] = {}
    if "latency" in scenarios:
        plots["latency"] = _latency_plot(scenarios["latency"], folder / "latency.png")
        plots["breakdown"] = _breakdown_plot(scenarios["latency"], folder / "breakdown.png")
    if "throughput" in scenarios:
        plots["throughput"] = _throughput_plot(scenarios["throughput"], folder / "throughput.png")
    if "scale" in scenarios:
        plots["scale"] = _scale_plot(scenarios["scale"], folder / "scale_rss.png")
    if "pacing" in scenarios:
        plots["pacing"] = _pacing_plot(scenarios["pacing"], folder / "pacing.png")
    return plots


def _save(figure: Any, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path.name


def _run_label(run: Mapping[str, Any]) -> str:
    return f"{run['speed']:g}x, {run['transport']}"


def _latency_plot(latency: Mapping[str, Any], path: Path) -> str:
    figure, (cdf, timeline) = plt.subplots(1, 2, figsize=(11, 4))
    for run in latency["runs"]:
        points = run.get("samples", {}).get("latency", [])
        values = sorted(ms for _, ms in points)
        if not values:
            continue
        share = [(i + 1) / len(values) for i in range(len(values))]
        cdf.plot(values, share, label=_run_label(run))
        timeline.scatter(
            [t for t, _ in points], [ms for _, ms in points], s=4, label=_run_label(run)
        )
    cdf.set_xscale("log")
    cdf.set_xlabel("CAD event → provider hand-off (ms)")
    cdf.set_ylabel("share of texts")
    cdf.axvline(500, color="grey", linestyle=":", linewidth=1)
    cdf.set_title("Latency, cumulative")
    cdf.legend(fontsize=8)
    timeline.set_yscale("log")
    timeline.set_xlabel("seconds into the replay")
    timeline.set_ylabel("ms")
    timeline.set_title("Latency over the replay")
    return _save(figure, path)


def _breakdown_plot(latency: Mapping[str, Any], path: Path) -> str:
    figure, axes = plt.subplots(figsize=(8, 3.5))
    runs = latency["runs"]
    labels = [_run_label(r) for r in runs]
    left = [0.0] * len(runs)
    for stage in STAGES:
        widths = [(r["first_text_breakdown_ms"].get(stage, {}).get("p50") or 0.0) for r in runs]
        axes.barh(labels, widths, left=left, label=stage.replace("_", " "))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.set_xlabel("median ms, first text (confirmation)")
    axes.set_title("Where the first text's time goes")
    axes.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


def _throughput_plot(throughput: Mapping[str, Any], path: Path) -> str:
    figure, axes = plt.subplots(figsize=(7, 4))
    for key, label in (("callerloop_steps", "callerloop"), ("floor_steps", "floor")):
        steps = throughput[key]
        axes.plot(
            [s["offered_calls_per_second"] for s in steps],
            [s["latency_ms"]["p99"] for s in steps],
            marker="o",
            label=label,
        )
    axes.axhline(throughput["p99_limit_ms"], color="grey", linestyle=":", linewidth=1)
    axes.set_yscale("log")
    axes.set_xlabel("offered load (calls/s)")
    axes.set_ylabel("p99 event → hand-off (ms)")
    axes.set_title(f"Throughput: callerloop ÷ floor = {throughput['ratio']}")
    axes.legend()
    return _save(figure, path)


def _scale_plot(scale: Mapping[str, Any], path: Path) -> str:
    figure, axes = plt.subplots(figsize=(7, 3.5))
    samples = scale.get("samples", {}).get("rss", [])
    axes.plot([t for t, _ in samples], [mb for _, mb in samples])
    axes.set_xlabel("seconds")
    axes.set_ylabel("worker RSS (MB)")
    axes.axhline(300, color="grey", linestyle=":", linewidth=1)
    axes.set_title(f"Scale: {scale['calls']} calls, worker memory")
    return _save(figure, path)


def _pacing_plot(pacing: Mapping[str, Any], path: Path) -> str:
    figure, axes = plt.subplots(figsize=(7, 3.5))
    handoffs = pacing.get("samples", {}).get("handoffs", [])
    axes.step(handoffs, range(1, len(handoffs) + 1), where="post", label="hand-offs")
    if handoffs:
        limit = pacing["limit_per_second"]
        axes.plot(
            [handoffs[0], handoffs[-1]],
            [1, 1 + (handoffs[-1] - handoffs[0]) * limit],
            linestyle=":",
            label=f"{limit:g} message/s",
        )
    axes.set_xlabel("seconds after the burst")
    axes.set_ylabel("texts handed off")
    axes.set_title("Sender pacing")
    axes.legend()
    return _save(figure, path)


# --- Markdown ------------------------------------------------------------------------------


def _ms(summary: Mapping[str, Any] | None) -> str:
    if not summary or not summary.get("count"):
        return "n/a"
    return (
        f"{summary['p50']:.0f} / {summary['p95']:.0f} / {summary['p99']:.0f} / {summary['max']:.0f}"
    )


def render_markdown(results: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    machine = results["machine"]
    lines = [
        f"# callerloop bench, {results['started_at']}",
        "",
        f"{'Quick run' if results['quick'] else 'Full run'}, "
        f"{results['wall_seconds'] / 60:.1f} min. "
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_mb']} MB, "
        f"{machine['platform']}; Python {machine['python']}, SQLite {machine['sqlite']}, "
        f"{machine['temporal_cli']}, temporalio {machine['packages'].get('temporalio')}. "
        f"Load average at start {machine['load_average_at_start']}, "
        f"at end {results.get('load_average_at_end')} (the machine is shared).",
        "",
        f"Stack: {results['settings']['stack']}.",
        "",
    ]
    for note in results.get("notes", []):
        lines += [f"Note: {note}", ""]
    scenarios = results["scenarios"]
    steal = [
        f"{name} {figures['cpu_steal_seconds']:g} s of {figures['wall_seconds']:g} s"
        for name, figures in scenarios.items()
        if figures.get("cpu_steal_seconds") is not None
    ]
    if steal:
        lines += [
            "CPU time taken by other guests of the VM (steal, all cores) during each "
            f"scenario: {', '.join(steal)}.",
            "",
        ]
    if "latency" in scenarios:
        lines += _latency_markdown(scenarios["latency"], plots)
    if "throughput" in scenarios:
        lines += _throughput_markdown(scenarios["throughput"], plots)
    if "scale" in scenarios:
        lines += _scale_markdown(scenarios["scale"], plots)
    if "pacing" in scenarios:
        lines += _pacing_markdown(scenarios["pacing"], plots)
    if "dryrun" in scenarios:
        lines += _dry_run_markdown(scenarios["dryrun"])
    for name, error in results.get("errors", {}).items():
        lines += [f"**{name} failed**: `{error}`", ""]
    return "\n".join(lines) + "\n"


def _latency_markdown(latency: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    lines = [
        "## 1. Latency: CAD event → provider hand-off",
        "",
        f"{latency['events']} events of {latency['calls']} calls: {latency['source']} "
        f"(the first {latency['cad_hours']:g} h of CAD time; {latency['events_trimmed']} later "
        "events of calls reopened days later left out). Time scale = replay speed. Latency is "
        "from the moment the client sends the event to the local provider's hand-off "
        "(`outbox.sent_at`), for the texts an event makes due (confirmation, assigned, cleared).",
        "",
        "| speed | client | texts | p50 / p95 / p99 / max (ms) | accepted (p50 / p99 ms) "
        "| replay s (scheduled) | worker peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in latency["runs"]:
        accepted = run["accepted_ms"]
        lines.append(
            f"| {run['speed']:g}x | {run['transport']} | {run['event_to_handoff_ms']['count']} "
            f"| {_ms(run['event_to_handoff_ms'])} | {accepted['p50']} / {accepted['p99']} "
            f"| {run['replay_seconds']} ({run['scheduled_seconds']}) "
            f"| {run['worker_peak_rss_mb']} MB |"
        )
    lines += [
        "",
        "First text (confirmation), median ms per stage: ingest (client → workflow started), "
        "Temporal start (→ first workflow task), eligibility (→ send scheduled), send activity "
        "(→ hand-off).",
        "",
        "| speed | client | " + " | ".join(s.replace("_", " ") for s in STAGES) + " |",
        "|---|---|" + "---|" * len(STAGES),
    ]
    for run in latency["runs"]:
        stages = run["first_text_breakdown_ms"]
        cells = [f"{stages[s]['p50']} (p99 {stages[s]['p99']})" for s in STAGES]
        lines.append(f"| {run['speed']:g}x | {run['transport']} | " + " | ".join(cells) + " |")
    lines += ["", f"![latency]({plots['latency']})", "", f"![breakdown]({plots['breakdown']})", ""]
    return lines


def _throughput_markdown(throughput: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    lines = [
        "## 2. Throughput and Temporal's floor",
        "",
        f"Rising offered load, {throughput['step_seconds']:g} s per step, until p99 > "
        f"{throughput['p99_limit_ms']:g} ms (or a text missing). callerloop: "
        f"{throughput['call_shape']}; time scale {throughput['time_scale']:g}. Floor: "
        f"{throughput['floor_shape']}. "
        f"Order: {throughput.get('order', 'callerloop, then the floor')}.",
        "",
        f"**callerloop sustains {throughput['callerloop_calls_per_second']:g} calls/s, the floor "
        f"{throughput['floor_calls_per_second']:g} calls/s: ratio {throughput['ratio']}.**",
        "",
        "| offered calls/s | callerloop p50 / p95 / p99 / max (ms) "
        "| floor p50 / p95 / p99 / max (ms) |",
        "|---|---|---|",
    ]
    floor = {s["offered_calls_per_second"]: s for s in throughput["floor_steps"]}
    for step in throughput["callerloop_steps"]:
        other = floor.get(step["offered_calls_per_second"])
        lines.append(
            f"| {step['offered_calls_per_second']:g} | {_step_cell(step)} "
            f"| {_step_cell(other) if other else 'n/a'} |"
        )
    for rate, step in floor.items():
        if rate not in {s["offered_calls_per_second"] for s in throughput["callerloop_steps"]}:
            lines.append(f"| {rate:g} | (not run) | {_step_cell(step)} |")
    lines += [
        "",
        "An event whose text callerloop rightly skipped (a confirmation or update that the "
        "call's closure overtook: the closing note says it all) counts when its closing note "
        "was handed off; an event told neither way is untold and fails its step.",
    ]
    lines += ["", f"![throughput]({plots['throughput']})", ""]
    return lines


def _step_cell(step: Mapping[str, Any]) -> str:
    """A throughput step's latencies, and how many of its events were not told by a text of
    their own."""
    notes = []
    if step.get("events_told_by_closing_note"):
        notes.append(f"{step['events_told_by_closing_note']} by closing note")
    if step.get("events_untold"):
        notes.append(f"{step['events_untold']} untold")
    return _ms(step["latency_ms"]) + (f" ({', '.join(notes)})" if notes else "")


def _cpu_rows(per_call: Mapping[str, float]) -> list[str]:
    if not per_call:
        return []
    each = ", ".join(f"{name} {ms:g}" for name, ms in per_call.items())
    return [f"| CPU per call (ms) | {each} |"]


def _scale_markdown(scale: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    return [
        "## 3. Scale",
        "",
        f"{scale['source']}: {scale['calls']} calls, {scale['events']} events, sent as fast as "
        f"accepted (64 in flight) with time scale 1, so texted calls stay open for their survey.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| total time (to the last text) | {scale['total_seconds']:.0f} s "
        f"({scale['total_seconds'] / 60:.1f} min); "
        f"events accepted in {scale['accept_seconds']:.0f} s |",
        f"| calls/s, events/s | {scale['calls_per_second']}, {scale['events_per_second']} |",
        f"| texts, texts/s | {sum(scale['texts'].values())} {scale['texts']}, "
        f"{scale['texts_per_second']} |",
        f"| worker peak RSS | {scale['worker_peak_rss_mb']} MB |",
        *_cpu_rows(scale.get("cpu_ms_per_call") or {}),
        f"| app database per call | {scale['app_db_bytes_per_call']} bytes "
        f"({scale['app_db_mb']} MB in all) |",
        f"| Temporal SQLite per call | {scale['temporal_db_bytes_per_call']} bytes "
        f"({scale['temporal_db_mb']} MB in all) |",
        f"| worker RSS with {scale['calls_waiting']} calls waiting for their survey | "
        f"{scale['worker_rss_waiting_mb']} MB ({scale['synthetic_calls_added_to_wait']} synthetic "
        "calls added to reach the target) |",
        *_sdk_rows(scale.get("worker_sdk") or {}),
        "",
        f"![scale]({plots['scale']})",
        "",
    ]


def _sdk_rows(sdk: Mapping[str, Any]) -> list[str]:
    if not sdk:
        return []
    return [
        f"| worker's workflow tasks | {sdk['workflow_tasks']}: {sdk['from_cache']} found their "
        f"call cached, {sdk['replayed_after_eviction']} replayed an evicted call "
        f"({sdk['forced_evictions']} evictions) |",
        f"| mean wait for the worker, run in it (workflow task) | {sdk['task_wait_ms_mean']} ms, "
        f"{sdk['task_run_ms_mean']} ms (local activities {sdk['local_activity_ms_mean']} ms) |",
    ]


def _pacing_markdown(pacing: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    return [
        "## 4. Sender pacing",
        "",
        f"{pacing['calls']} calls arrive at once; the sender's limit is "
        f"{pacing['limit_per_second']:g} message/s. Most sends in one calendar second: "
        f"**{pacing['max_in_any_second']}**; in any sliding 1 s window: "
        f"{pacing['max_in_any_1s_window']}; smallest gap {pacing['min_gap_s']} s, median "
        f"{pacing['median_gap_s']} s; the queue drained at **{pacing['drain_per_second']} "
        f"messages/s**.",
        "",
        f"![pacing]({plots['pacing']})",
        "",
    ]


def _dry_run_markdown(dry_run: Mapping[str, Any]) -> list[str]:
    headline = dry_run["headline"]
    return [
        "## 5. Go-live dry run",
        "",
        f"`callerloop cad dryrun` over {dry_run['source']}: **{dry_run['total_seconds']} s** "
        f"(target {dry_run['target_seconds']:g} s): read {dry_run['read_seconds']} s, policy "
        f"and lifecycle {dry_run['run_seconds']} s, report {dry_run['write_seconds']} s. "
        f"{headline['texted calls']} of {headline['calls']} calls would be texted, "
        f"{headline['texts per day']} texts a day.",
        "",
    ]
