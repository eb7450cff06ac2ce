"""`/opendata/`: the published survey results, the same files `callerloop opendata export`
writes (CSV, each agency's Frictionless `datapackage.json`, DCAT-US `data.json`), public
and built from the database at most once a few minutes."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, utcnow
from callerloop.opendata.package import CATALOG_FILE, PATH_PREFIX, export_files

REFRESH_SECONDS = 300.0
MEDIA_TYPES = {".csv": "text/csv; charset=utf-8", ".json": "application/json"}
HEADERS = {
    "Access-Control-Allow-Origin": "*",  # harvesters and browsers on the portal's site
    "Cache-Control": f"public, max-age={int(REFRESH_SECONDS)}",
    "X-Content-Type-Options": "nosniff",
}


class PublishedFiles:
    """The export, rebuilt when older than `seconds`."""

    def __init__(
        self,
        build: Callable[[datetime], dict[str, bytes]],
        seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._build = build
        self._seconds = seconds
        self._built_at = -float("inf")
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def files(self) -> dict[str, bytes]:
        with self._lock:
            if time.monotonic() - self._built_at >= self._seconds:
                self._files = self._build(utcnow())
                self._built_at = time.monotonic()
            return self._files


def opendata_router(
    db: Database, agencies: Mapping[str, AgencyConfig], public_base_url: str
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    published = PublishedFiles(lambda now: export_files(db, agencies, public_base_url, now))

    @router.get(PATH_PREFIX + "/")
    def index() -> Response:
        links = "".join(
            f'<li><a href="{PATH_PREFIX}/{name}">{name}</a></li>'
            for name in sorted(published.files())
        )
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Open data: caller survey results</title></head><body><main>"
            "<h1>Open data: caller survey results</h1>"
            f'<p>Catalog for portals (DCAT-US): <a href="{PATH_PREFIX}/{CATALOG_FILE}">'
            f"{CATALOG_FILE}</a></p><ul>{links}</ul></main></body></html>"
        )
        return HTMLResponse(html, headers=HEADERS)

    @router.get(PATH_PREFIX + "/{path:path}")
    def published_file(path: str) -> Response:
        content = published.files().get(path)
        if content is None:
            return Response("not found", status_code=404, media_type="text/plain")
        suffix = path[path.rfind(".") :]
        return Response(content, media_type=MEDIA_TYPES.get(suffix), headers=HEADERS)

    return router
