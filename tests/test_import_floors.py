"""The floors of pyproject.toml's import contracts hold the code, and they bite: a copy of
the packages with one import pointing up a floor (the shared core reaching into the web
app, as `callerloop/inbound.py` once reached into the workflows) breaks the contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from callerloop.core.settings import PROJECT_ROOT

PACKAGES = ("workflows", "activities", "callerloop", "starter", "web", "devtools", "bench", "chaos")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    linter = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(linter), "--no-cache"], cwd=root, capture_output=True, text=True, check=False
    )


def copy_of_the_house(root: Path) -> None:
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package,
            root / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.toml", "*.html", "*.css", "*.mo"),
        )


def test_the_code_keeps_its_floors() -> None:
    kept = lint_imports(PROJECT_ROOT)
    assert kept.returncode == 0, kept.stdout + kept.stderr


def test_an_import_up_a_floor_breaks_the_contract(tmp_path: Path) -> None:
    copy_of_the_house(tmp_path)
    assert lint_imports(tmp_path).returncode == 0  # the copy keeps them too
    settings = tmp_path / "callerloop" / "core" / "settings.py"
    settings.write_text(settings.read_text() + "\nimport web.app  # up from the core\n")
    broken = lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "callerloop.core is not allowed to import web" in broken.stdout, broken.stdout


def test_a_workflow_that_imports_the_database_breaks_the_contract(tmp_path: Path) -> None:
    copy_of_the_house(tmp_path)
    lifecycle = tmp_path / "workflows" / "lifecycle.py"
    lifecycle.write_text(lifecycle.read_text() + "\nimport sqlmodel  # I/O in a workflow\n")
    broken = lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "workflows.lifecycle -> sqlmodel" in broken.stdout, broken.stdout


def test_an_import_cycle_within_a_floor_breaks_the_contract(tmp_path: Path) -> None:
    copy_of_the_house(tmp_path)
    column_types = tmp_path / "callerloop" / "core" / "column_types.py"
    column_types.write_text(column_types.read_text() + "\nimport callerloop.core.db  # back\n")
    broken = lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "No cycles are allowed in callerloop.core" in broken.stdout, broken.stdout
