"""Rendering the staff pages (dashboard, comments, sign-in): English only, their own
templates (web/templates/staff/) and stylesheet, and headers that keep them private."""

from __future__ import annotations

import os
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from web.i18n import TEMPLATES_DIR

# Set by the dev stack (`make run`), whose residents are simulated: every staff page says so.
SIMULATED_RESIDENTS_ENV = "CALLERLOOP_SIMULATED_RESIDENTS"

STAFF_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class StaffRenderer:
    def __init__(self) -> None:
        self._environment = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR / "staff"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        simulated = os.environ.get(SIMULATED_RESIDENTS_ENV) == "1"
        self._environment.globals["simulated_residents"] = simulated

    def page(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self._environment.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status_code, headers=STAFF_HEADERS)
