"""Skipping a test whose outside requirement is missing here, with the reason.

Under CALLERLOOP_REQUIRE_ALL=1 (set by CI) a skip fails the run instead: see conftest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callerloop.settings import SHARED_CAD_EXPORT


def real_cad_export() -> Path:
    """The real CAD export beside the checkout (../shared/data), or skip."""
    if not SHARED_CAD_EXPORT.exists():
        pytest.skip(
            f"real CAD export not found at {SHARED_CAD_EXPORT} (it is not part of the repo)"
        )
    return SHARED_CAD_EXPORT
