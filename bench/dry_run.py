"""The go-live dry run's speed: the whole export (or 98 synthetic days) read, run through
the policy and the lifecycle, and written as the report, as `callerloop cad dryrun` does.
Issue 22's target: the real export's 14,589 calls in under 30 s on the 2-core machine."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.load import whole_export
from bench.machine import peak_rss_mb
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.settings import get_settings
from callerloop.golive.dry_run import dry_run
from callerloop.golive.report import write_report

TARGET_SECONDS = 30.0


def measure_dry_run(
    agency: AgencyConfig, *, quick: bool, out: Path, console: Console
) -> dict[str, Any]:
    started = time.perf_counter()
    export, description, real = whole_export(agency, 2 if quick else None)
    read = time.perf_counter()
    run = dry_run(export, agency, public_base_url=get_settings().public_base_url)
    simulated = time.perf_counter()
    write_report(run, out)
    written = time.perf_counter()
    console.print(
        f"[bold]dryrun[/]: {description}: {written - started:.1f} s "
        f"(read {read - started:.1f}, run {simulated - read:.1f}, write {written - simulated:.1f})"
    )
    return {
        "source": description,
        "real_data": real,
        "calls": len(run.calls),
        "read_seconds": round(read - started, 2),
        "run_seconds": round(simulated - read, 2),
        "write_seconds": round(written - simulated, 2),
        "total_seconds": round(written - started, 2),
        "target_seconds": TARGET_SECONDS,
        "bench_process_peak_rss_mb": peak_rss_mb(os.getpid()),
        "headline": run.headline,
    }
