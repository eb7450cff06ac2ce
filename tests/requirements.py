"""Skipping a test whose outside requirement is missing here, with the reason.

Under CALLERLOOP_REQUIRE_ALL=1 (set by CI) a skip fails the run instead: see conftest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callerloop.core.settings import SHARED_CAD_EXPORT


def real_cad_export() -> Path:
    """The real CAD export beside the checkout (../shared/data), or skip."""
    if not SHARED_CAD_EXPORT.exists():
        pytest.skip(
            f"real CAD export not found at {SHARED_CAD_EXPORT} (it is not part of the repo)"
        )
    return SHARED_CAD_EXPORT


TWILIO_SPECS = SHARED_CAD_EXPORT.parents[1] / "reference" / "twilio-oai"  # in ../shared
PRISM_PACKAGE = "@stoplight/prism-cli@5"


def twilio_spec(name: str) -> Path:
    """One of Twilio's OpenAPI specs beside the checkout (../shared/reference/twilio-oai),
    e.g. "twilio_api_v2010.json", or skip."""
    spec = TWILIO_SPECS / name
    if not spec.exists():
        pytest.skip(f"Twilio's OpenAPI spec not found at {spec} (it is not part of the repo)")
    return spec


def prism_cli() -> Path:
    """The `prism` binary of Stoplight Prism, installed with npm into .data/prism (ignored
    by git) on first use; skip when npm is missing or cannot install it."""
    import shutil
    import subprocess

    from callerloop.core.settings import PROJECT_ROOT

    folder = PROJECT_ROOT / ".data" / "prism"
    binary = folder / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm not found: the Prism contract test installs {PRISM_PACKAGE} with it")
    folder.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"]
    result = subprocess.run(
        [*command, str(folder), PRISM_PACKAGE],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not binary.exists():
        pytest.skip(f"npm could not install {PRISM_PACKAGE}: {result.stderr.strip()[-500:]}")
    return binary


EIDO_REFERENCE = SHARED_CAD_EXPORT.parents[1] / "reference" / "eido"  # in ../shared


def eido_reference() -> Path:
    """NENA's EIDO JSON schema and sample beside the checkout (../shared/reference/eido),
    or skip."""
    if not (EIDO_REFERENCE / "sample_call_transfer_eido.json").exists():
        pytest.skip(
            f"NENA EIDO reference not found at {EIDO_REFERENCE} (it is not part of the repo)"
        )
    return EIDO_REFERENCE


AXE_PACKAGE = "axe-core@4"


def axe_core_script() -> str:
    """axe-core's `axe.min.js`, installed with npm into .data/axe (ignored by git) on first
    use, to be injected into pages under test; skip when npm is missing or cannot install it."""
    import shutil
    import subprocess

    from callerloop.core.settings import PROJECT_ROOT

    folder = PROJECT_ROOT / ".data" / "axe"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"npm not found: the accessibility scan installs {AXE_PACKAGE} with it")
        folder.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"]
        result = subprocess.run(
            [*command, str(folder), AXE_PACKAGE],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0 or not script.exists():
            pytest.skip(f"npm could not install {AXE_PACKAGE}: {result.stderr.strip()[-500:]}")
    return script.read_text(encoding="utf-8")


# Headless, and nothing that would reach for the internet from this offline machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_executable() -> Path:
    """Debian's Chromium (apt package `chromium`), which Playwright drives; never a browser
    download. Skip when it is not installed."""
    import shutil

    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    pytest.skip("Chromium not found (/usr/bin/chromium, or `chromium` on PATH): apt install it")
