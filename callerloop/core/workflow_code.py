"""One compiled copy of the workflow code per worker process, shared by every sandboxed run.

The workflow sandbox re-imports `workflows.*` for each run it keeps, so no module state
leaks between calls and a clock read in workflow logic fails the run. Re-importing also
unmarshals every module's bytecode again: about 125 KB of code objects per cached call,
more than half of what the sandbox costs. Code objects are immutable, so sharing them
keeps every run's modules, globals, functions and classes its own while the bytecode is
read once. It also pins the code: a run started after the files on disk changed (a deploy
over a running worker) runs the code the worker started with, not a mix of the two.
"""

from __future__ import annotations

import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from types import CodeType, ModuleType


class _SharedCodeLoader(importlib.machinery.SourceFileLoader):
    """A source loader whose compiled code is read once per file and then reused."""

    _codes: dict[str, CodeType] = {}
    _lock = threading.Lock()

    def get_code(self, fullname: str) -> CodeType:
        with self._lock:
            code = self._codes.get(self.path)
            if code is None:
                compiled = super().get_code(fullname)
                if compiled is None:  # only for a module without source, which we never load
                    raise ImportError(f"no code for {fullname} at {self.path}", name=fullname)
                code = self._codes[self.path] = compiled
            return code


class SharedWorkflowCode(MetaPathFinder):
    """Finds the named packages' modules as usual and loads them with shared code."""

    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = tuple(packages)

    def _covers(self, fullname: str) -> bool:
        return any(fullname == p or fullname.startswith(p + ".") for p in self.packages)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not self._covers(fullname):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _SharedCodeLoader(spec.loader.name, spec.loader.path)
        return spec


def share_workflow_code(packages: Sequence[str] = ("workflows",)) -> None:
    """Installs the finder once per process (idempotent): later imports of these packages,
    the sandbox's included, reuse one compiled copy of each module."""
    for finder in sys.meta_path:
        if isinstance(finder, SharedWorkflowCode) and finder.packages == tuple(packages):
            return
    sys.meta_path.insert(0, SharedWorkflowCode(packages))
