"""The wheel holds the product and nothing else: the test rigs (the Twilio stand-in, the
dev stack, the phone simulator), the bench, the chaos run and the tests stay in the
repository. Built with hatchling, the build backend pyproject.toml names."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

from callerloop.core.settings import PROJECT_ROOT

PRODUCT = {"callerloop", "workflows", "activities", "starter", "web", "worker.py"}


def test_the_wheel_holds_the_product_only(tmp_path: Path) -> None:
    [wheel] = WheelBuilder(str(PROJECT_ROOT)).build(directory=str(tmp_path), versions=["standard"])
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert tops == PRODUCT
    assert not [name for name in names if "standin" in name or "devstack" in name]
    # What the product reads at run time travels with it.
    assert "callerloop/core/default_templates.toml" in names
    assert "callerloop/languages/ar.toml" in names  # a language is data
    assert "web/locales/zh/LC_MESSAGES/messages.po" in names
    assert any(name.startswith("callerloop/core/migrations/versions/0001") for name in names)
    assert any(name.startswith("web/templates/") for name in names)
