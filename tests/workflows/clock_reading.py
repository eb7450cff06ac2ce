"""A helper module that reads the wall clock, as a careless change to `workflows.lifecycle`
(or any module a workflow imports) would. Used by tests/workflows/test_sandbox.py."""

from __future__ import annotations

from datetime import datetime


def stamp() -> str:
    return datetime.now().isoformat()  # the mistake the sandbox must catch
