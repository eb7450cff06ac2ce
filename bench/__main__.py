"""`uv run python -m bench [--quick] [--only latency,scale] [--scale-days N]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.machine import load_average, machine_info, steal_seconds
from bench.report import write_results
from bench.scenarios import SCENARIOS, Options
from callerloop.core.agency_config import load_agencies
from callerloop.core.settings import PROJECT_ROOT, get_settings

RESULTS = PROJECT_ROOT / "bench" / "results"
WORK = PROJECT_ROOT / ".data" / "bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run of every scenario")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default: all of {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--scale-days", type=int, default=None, help="replay only N days in scale")
    parser.add_argument("--waiting", type=int, default=10_000, help="calls waiting in scale")
    parser.add_argument(
        "--latency-clients", default="python,http", help="clients of the latency scenario"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder for the stacks")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {list(SCENARIOS)}")
    return args


async def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    settings = get_settings()
    agency = load_agencies(settings.agencies_dir)[settings.demo_agency]
    options = Options(
        quick=args.quick,
        work_dir=args.work,
        agency=agency,
        console=console,
        scale_days=args.scale_days,
        waiting_target=args.waiting,
        latency_clients=tuple(args.latency_clients.split(",")),
    )
    started = time.time()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine_info(),
        "settings": {
            "stack": "Temporal dev server (SQLite file), one callerloop worker process, "
            "SQLite application database, `local` SMS provider, JSON logs",
            "agency": agency.id,
            "messages_per_second": agency.texts.messages_per_second,
        },
        "scenarios": {},
        "errors": {},
    }
    for name in args.only.split(","):
        scenario_started, steal_before = time.time(), steal_seconds()
        try:
            figures = await SCENARIOS[name](options)
        except Exception as error:  # one broken scenario must not lose the others
            console.print(f"[red]{name} failed[/]: {error}")
            traceback.print_exc()
            results["errors"][name] = f"{type(error).__name__}: {error}"
            continue
        figures["wall_seconds"] = round(time.time() - scenario_started, 1)
        steal_after = steal_seconds()
        if steal_before is not None and steal_after is not None:
            figures["cpu_steal_seconds"] = round(steal_after - steal_before, 1)
        results["scenarios"][name] = figures
    results["wall_seconds"] = round(time.time() - started, 1)
    results["load_average_at_end"] = load_average()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(soft_wrap=True)
    results = asyncio.run(run(args, console))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = write_results(results, args.out, stamp)
    console.print(f"results: {args.out / (stamp + '.json')}; report: {report}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
