"""workflows/versions.py is the list of every patch: each `workflow.patched` and
`workflow.deprecate_patch` in the workflows names one of its patches, each listed patch is
asked for, and each has its day and reason."""

from __future__ import annotations

import ast
from pathlib import Path

from workflows import versions

WORKFLOWS = Path(versions.__file__).parent


def patch_calls() -> list[tuple[str, ast.expr]]:
    """Where the workflows ask for a patch, and what they pass."""
    calls: list[tuple[str, ast.expr]] = []
    for module in sorted(WORKFLOWS.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("patched", "deprecate_patch")
            ):
                calls.append((f"{module.name}:{node.lineno}", node.args[0]))
    return calls


def test_every_patch_asked_for_is_listed() -> None:
    calls = patch_calls()
    assert calls, "no workflow.patched in workflows/: the scan is broken"
    for where, argument in calls:
        # versions.NAME.id, nothing else: a bare string would escape the list.
        assert (
            isinstance(argument, ast.Attribute)
            and argument.attr == "id"
            and isinstance(argument.value, ast.Attribute)
            and isinstance(argument.value.value, ast.Name)
            and argument.value.value.id == "versions"
        ), f"{where}: pass versions.<PATCH>.id, not {ast.unparse(argument)}"
        assert isinstance(getattr(versions, argument.value.attr, None), versions.Patch), where


def test_every_listed_patch_is_asked_for_and_explained() -> None:
    asked = {
        argument.value.attr
        for _, argument in patch_calls()
        if isinstance(argument, ast.Attribute) and isinstance(argument.value, ast.Attribute)
    }
    listed = {name for name, value in vars(versions).items() if isinstance(value, versions.Patch)}
    assert asked == listed
    assert set(versions.PATCHES) == {getattr(versions, name) for name in listed}
    ids = [patch.id for patch in versions.PATCHES]
    assert len(set(ids)) == len(ids)
    days = [patch.landed for patch in versions.PATCHES]
    assert days == sorted(days), "PATCHES is oldest first"
    assert all(len(patch.reason) > 40 for patch in versions.PATCHES)
