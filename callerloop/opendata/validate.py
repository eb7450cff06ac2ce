"""Checking a written data package with the `frictionless` library, as a portal would."""

from __future__ import annotations

from pathlib import Path


def validate_package(descriptor: Path) -> list[str]:
    """What is wrong with the package at `descriptor` (its schema and every row); none: it
    is valid."""
    from frictionless import Package  # imported when used: it is slow to import

    # Absolute: frictionless joins a relative descriptor onto its basepath a second time.
    descriptor = descriptor.resolve()
    report = Package(str(descriptor), basepath=str(descriptor.parent)).validate()
    if report.valid:
        return []
    return [f"{descriptor}: {error.message}" for error in report.flatten_errors_objects()] or [
        f"{descriptor}: not valid"
    ]
