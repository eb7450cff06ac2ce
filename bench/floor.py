"""The floor's worker, a child process like callerloop's worker:

    python -m bench.floor ADDRESS TASK_QUEUE LOG [TEXTS_PER_SECOND]

Each activity appends `workflow_id name epoch_seconds` to LOG: the floor's hand-off. Its
texts' queue is paced at TEXTS_PER_SECOND, as callerloop's sender queue is."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from bench.floor_workflow import FloorStep, FloorWorkflow, text_task_queue
from callerloop.core.codec import data_converter
from callerloop.core.settings import get_settings
from callerloop.core.temporal import payload_codec
from worker import ACTIVITY_THREADS


class StepLog:
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    @activity.defn(name="floor_step")
    def floor_step(self, step: FloorStep) -> None:
        with self._lock:
            self._file.write(f"{step.workflow_id} {step.name} {time.time():.6f}\n")


async def main(
    address: str, task_queue: str, log: Path, texts_per_second: float | None = None
) -> None:
    # callerloop's own converter and encryption (the same environment as its worker): the
    # client that starts these workflows encrypts, and the floor pays what callerloop pays.
    codec = payload_codec(get_settings())
    client = await Client.connect(address, data_converter=data_converter(codec))
    steps = StepLog(log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        # The same activity executor, concurrency and workers as callerloop's: the workflow
        # (and the purge, a local activity) on one queue, the texts on their own.
        async with (
            Worker(
                client,
                task_queue=task_queue,
                workflows=[FloorWorkflow],
                activities=[steps.floor_step],
                activity_executor=executor,
                max_concurrent_activities=ACTIVITY_THREADS,
            ),
            Worker(
                client,
                task_queue=text_task_queue(task_queue),
                activities=[steps.floor_step],
                activity_executor=executor,
                max_concurrent_activities=ACTIVITY_THREADS,
                max_task_queue_activities_per_second=texts_per_second,
            ),
        ):
            await stop.wait()


def read_steps(path: Path) -> list[tuple[str, str, float]]:
    if not path.exists():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(" ")
        if len(parts) == 3:
            steps.append((parts[0], parts[1], float(parts[2])))
    return steps


if __name__ == "__main__":
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else None
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), rate))
