"""python -m chaos [--short] [--seed N] [--calls N] [--speed X] [--time-scale X] [--day D]"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import date
from pathlib import Path

from rich.console import Console

from chaos.run import ChaosOptions, print_report, run_chaos
from devtools.devstack import StackError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="the fault schedule's seed")
    parser.add_argument("--short", action="store_true", help="the day's first 40 calls, fast")
    parser.add_argument("--calls", type=int, help="replay only the day's first N calls")
    parser.add_argument("--speed", type=float, help="CAD speed-up (replay pace)")
    parser.add_argument("--time-scale", type=float, help="policy durations divided by this")
    parser.add_argument("--day", type=date.fromisoformat, help="the day to replay")
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    options = ChaosOptions(
        seed=args.seed,
        short=args.short,
        calls=args.calls,
        speed=args.speed,
        time_scale=args.time_scale,
        day=args.day,
        settle_timeout=args.settle_timeout,
        data_dir=args.data_dir,
    )
    console = Console(soft_wrap=True)
    try:
        result = asyncio.run(run_chaos(options, console))
    except StackError as error:
        console.print(f"error: {error}", markup=False)
        return 2
    print_report(result, console)
    return 0 if result.passed else 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # no interpreter finalisation: the Temporal SDK may abort at exit (#300)
