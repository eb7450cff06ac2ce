"""The image's Python environment, built here as the Dockerfile's build stage builds it:
its COPY lines into an empty folder, then its RUN lines (`uv sync --frozen --no-dev …`).
Without the dev dependencies every module must still import and every command the
containers run must start: a runtime import of a dev-only package (httpx was one) would
otherwise only show in production."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callerloop.core.settings import PROJECT_ROOT
from tests.docker.files import callerloop_services, dockerfile

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
failed = []
for package in ("callerloop", "workflows", "activities", "starter", "web"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except Exception as error:
            failed.append(f"{info.name}: {error!r}")
import worker
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def uv_binary() -> str:
    """uv as `make` found it: `uv run` names itself in $UV; else on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found is None:
        pytest.fail("uv not found ($UV or PATH): `make setup` installs it")
    return found


def build_stage() -> tuple[list[list[str]], list[str]]:
    """The build stage's COPY sources (from the build context) and RUN commands."""
    stages: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction.keyword == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append((instruction.keyword, instruction.arguments))
    [build] = [stage for stage in stages if any("uv sync" in args for _, args in stage)]
    copies = [
        args.split()[:-1]
        for keyword, args in build
        if keyword == "COPY" and not args.startswith("--from")
    ]
    runs = [re.sub(r"--mount=\S+\s*", "", args) for keyword, args in build if keyword == "RUN"]
    return copies, runs


def test_the_image_environment_runs_without_dev_dependencies(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    copies, runs = build_stage()
    for sources in copies:
        for source in sources:
            origin = PROJECT_ROOT / source.rstrip("/")
            if origin.is_dir():
                shutil.copytree(
                    origin, app / origin.name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(origin, app / origin.name)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT", "CALLERLOOP_", "PYTHONPATH"))
    }
    env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": sys.executable, "UV_NO_PROGRESS": "1"}
    uv = uv_binary()
    for run in runs:
        command = re.sub(r"(^|&&\s*)uv ", rf"\g<1>{uv} ", run)
        built = subprocess.run(
            command, shell=True, cwd=app, env=env, capture_output=True, text=True, check=False
        )
        assert built.returncode == 0, f"RUN {run}\n{built.stdout}{built.stderr}"

    python = app / ".venv" / "bin" / "python"
    dev_only = subprocess.run(
        [str(python), "-c", "import pytest"], capture_output=True, check=False
    )
    assert dev_only.returncode != 0, "the image environment has the dev dependencies"
    # Test rigs stay out of the image: the dev tools and the time-skipping test server.
    assert not (app / "devtools").exists()
    assert not (app / ".venv" / "bin" / "temporal-test-server").exists()
    imported = subprocess.run(
        [str(python), "-c", IMPORT_EVERYTHING],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    callerloop = app / ".venv" / "bin" / "callerloop"
    assert (app / ".venv" / "bin" / "temporal").exists()  # the README's `exec worker temporal`
    for name, service in callerloop_services().items():
        words = [word for word in service["command"] if not word.startswith("-")]
        shown = subprocess.run(
            [str(callerloop), *words, "--help"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, f"service {name}: {shown.stdout}{shown.stderr}"
