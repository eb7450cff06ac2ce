"""The go-live dry run on the dashboard (`/dashboard/dryrun`): a supervisor uploads a CAD
export and sees what the agency's policy would text, as `callerloop cad dryrun` writes it.
Sign-in and a genuine form required; each run is in the audit log."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from callerloop.cad.replay import parse_cad_export
from callerloop.core import audit
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.golive.dry_run import DEFAULT_PRICE_PER_SEGMENT, DryRun, dry_run
from callerloop.golive.report import report_body
from web.staff_auth import DASHBOARD, LOGOUT_PATH, StaffAuth, StaffUser
from web.staff_pages import StaffRenderer

DRY_RUN = DASHBOARD + "/dryrun"
MAX_UPLOAD_BYTES = 64 * 2**20  # a year of a large agency's calls is well under this


class UploadRefused(ValueError):
    pass


def dry_run_router(
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    auth: StaffAuth,
    renderer: StaffRenderer,
    public_base_url: str,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def page(user: StaffUser, status_code: int = 200, **context: Any) -> Response:
        return renderer.page(
            "dry_run.html",
            status_code,
            user=user,
            logout_path=LOGOUT_PATH,
            agencies=sorted(agencies.values(), key=lambda a: a.agency.name),
            default_price=DEFAULT_PRICE_PER_SEGMENT,
            **context,
        )

    @router.get(DRY_RUN)
    def form(request: Request) -> Response:
        user = auth.current(request)
        if user is None:
            return auth.sign_in_first(request)
        return page(user)

    @router.post(DRY_RUN)
    async def run(request: Request) -> Response:
        user = await run_in_threadpool(auth.current, request)
        if user is None:
            return auth.sign_in_first(request)
        fields = await request.form()
        token = fields.get("form_token")
        if not auth.genuine_post(request, user, token if isinstance(token, str) else None):
            return page(user, 403, error="The form expired. Please try again.")
        try:
            agency, price, text, name = await _read_upload(fields, agencies)
            result = await run_in_threadpool(_dry_run, text, agency, price, public_base_url)
        except UploadRefused as error:
            chosen, price_given = fields.get("agency"), fields.get("price")
            return page(user, 400, error=str(error), chosen=chosen, price=price_given)
        await run_in_threadpool(
            audit.record, db, "dry run", agency.id,
            f"{len(result.calls)} calls from {name}", actor=user.username, source="web",
        )  # fmt: skip
        report = report_body(result)
        return page(user, chosen=agency.id, price=price, report=report, filename=name)

    return router


async def _read_upload(
    fields: Any, agencies: Mapping[str, AgencyConfig]
) -> tuple[AgencyConfig, float, str, str]:
    agency = agencies.get(str(fields.get("agency") or ""))
    if agency is None:
        raise UploadRefused("Choose one of the agencies.")
    try:
        price = float(str(fields.get("price") or DEFAULT_PRICE_PER_SEGMENT))
    except ValueError:
        raise UploadRefused("The price per segment must be a number, like 0.0083.") from None
    if not price >= 0:
        raise UploadRefused("The price per segment must be 0 or more.")
    upload = fields.get("export")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise UploadRefused("Choose the CAD export (a CSV file) to run.")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadRefused(f"{upload.filename}: larger than {MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UploadRefused(
            f"{upload.filename}: not UTF-8 text (byte {error.start}); save the export as CSV UTF-8."
        ) from None
    return agency, price, text, upload.filename


def _dry_run(text: str, agency: AgencyConfig, price: float, public_base_url: str) -> DryRun:
    try:
        export = parse_cad_export(text.splitlines(keepends=True), agency)
    except ValueError as error:  # the header lacks a required column, or unreadable CSV
        raise UploadRefused(str(error)) from None
    return dry_run(export, agency, public_base_url=public_base_url, price_per_segment=price)
