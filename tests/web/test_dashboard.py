"""The staff dashboard over HTTP: sign-in (same answer for a wrong password and an unknown
user, anti-forgery tokens, a limit on failures, cookie flags, the audit log), the charts
and their tables with filters, the comments inbox, and /opendata/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from typer.testing import CliRunner

from callerloop.core import audit
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.core.settings import get_settings
from callerloop.opendata.package import export_files
from callerloop.staff import users as staff_users
from callerloop.staff.users import add_user, disable_user
from starter.cli import app as cli_app
from tests.factories import (
    call_record,
    make_agency,
    outbox_row,
    outbox_row_for_call,
    program_history,
    survey_comment,
    survey_response,
    surveyed_calls,
)
from tests.web.pages import pages_app
from web import dashboard_data
from web.page_security import GuessLimiter

BASE = "https://callerloop.test"
USER, PASSWORD = "sgt.lee", "correct horse battery staple"


@pytest.fixture
def agency() -> AgencyConfig:
    return make_agency(
        survey={"call_type_groups": {"disorder": [r"\bNOISE"], "property": ["LARCENY"]}}
    )


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its lowest cost: the same code, a fraction of the CPU (the production
    cost is checked on its own, below)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(staff_users, "_hasher", cheap)
    monkeypatch.setattr(staff_users, "_dummy_hash", lambda: cheap.hash("dummy"))


def test_passwords_are_hashed_with_argon2id_at_a_production_cost() -> None:
    parameters = extract_parameters(staff_users.PASSWORD_HASHER.hash("x" * 12))
    assert parameters.type is Type.ID
    assert parameters.memory_cost >= 64 * 1024 and parameters.time_cost >= 3


@pytest.fixture
def staffed(database: Database) -> Database:
    add_user(database, USER, PASSWORD)
    return database


def client_for(
    database: Database,
    agency: AgencyConfig,
    base: str = BASE,
    limiter: GuessLimiter | None = None,
    ip: str = "198.51.100.4",
) -> httpx.AsyncClient:
    app = pages_app(database, {agency.id: agency}, base, login_limiter=limiter)
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base)


def form_token(html: str) -> str:
    match = re.search(r'name="form_token" value="([^"]+)"', html)
    assert match is not None, "no form token"
    return match.group(1)


async def sign_in(
    client: httpx.AsyncClient, username: str = USER, password: str = PASSWORD, next_: str = ""
) -> httpx.Response:
    page = await client.get("/dashboard/login", params={"next": next_} if next_ else None)
    fields = {"form_token": form_token(page.text), "username": username, "password": password}
    if next_:
        fields["next"] = next_
    return await client.post("/dashboard/login", data=fields)


@pytest.fixture
async def signed_in(staffed: Database, agency: AgencyConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(staffed, agency) as client:
        response = await sign_in(client)
        assert response.status_code == 303, response.text
        yield client


@pytest.mark.parametrize(
    "path", ["/dashboard", "/dashboard/comments", "/dashboard/tables/texts?agency=testville"]
)
async def test_anonymous_visitors_are_sent_to_sign_in(
    database: Database, agency: AgencyConfig, path: str
) -> None:
    async with client_for(database, agency) as client:
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/dashboard/login?next=%2Fdashboard")
        chart = await client.get("/dashboard/charts/texts.svg")
        assert chart.status_code == 401 and b"<svg" not in chart.content


async def test_sign_in_sets_a_private_session_cookie_and_is_audited(
    staffed: Database, agency: AgencyConfig
) -> None:
    async with client_for(staffed, agency) as client:
        response = await sign_in(client, next_="/dashboard/comments")
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard/comments"
        [cookie] = [c for c in response.headers.get_list("set-cookie") if "callerloop_staff" in c]
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "secure", "samesite=lax", "path=/dashboard"} <= flags
        assert (await client.get("/dashboard")).status_code == 200
    async with client_for(staffed, agency, base="http://localhost:8000") as plain:
        response = await sign_in(plain)
        [cookie] = [c for c in response.headers.get_list("set-cookie") if "callerloop_staff" in c]
        assert "secure" not in cookie.lower()  # a local http deployment keeps its session
    assert [(e.action, e.actor, e.source) for e in audit.latest(staffed)] == [
        ("login", USER, "web"),
        ("login", USER, "web"),
    ]


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    staffed: Database, agency: AgencyConfig
) -> None:
    async with client_for(staffed, agency) as client:
        wrong = await sign_in(client, password="not the password at all")
        unknown = await sign_in(client, username="nobody.here")
    assert wrong.status_code == unknown.status_code == 401
    assert "callerloop_staff" not in (wrong.headers.get("set-cookie") or "")

    def without_echo(response: httpx.Response, username: str) -> str:
        return form_free(response.text).replace(username, "")

    assert without_echo(wrong, USER) == without_echo(unknown, "nobody.here")
    assert "Wrong username or password." in wrong.text
    entries = [(e.action, e.target) for e in audit.latest(staffed)]
    assert entries == [("login failed", USER), ("login failed", "nobody.here")]


def form_free(html: str) -> str:
    return re.sub(r'name="form_token" value="[^"]+"', "", html)


async def test_a_disabled_user_cannot_sign_in_and_loses_the_session(
    staffed: Database, agency: AgencyConfig
) -> None:
    async with client_for(staffed, agency) as client:
        assert (await sign_in(client)).status_code == 303
        disable_user(staffed, USER)
        assert (await client.get("/dashboard")).status_code == 303
        assert (await sign_in(client)).status_code == 401


async def test_sign_in_refuses_forged_forms(staffed: Database, agency: AgencyConfig) -> None:
    fields = {"username": USER, "password": PASSWORD}
    async with client_for(staffed, agency) as client:
        no_token = await client.post("/dashboard/login", data=fields)
        assert no_token.status_code == 403
        page = await client.get("/dashboard/login")
        token = form_token(page.text)
        cross_site = await client.post(
            "/dashboard/login",
            data={**fields, "form_token": token},
            headers={"Origin": "https://attacker.example"},
        )
        assert cross_site.status_code == 403
    async with client_for(staffed, agency) as other_browser:  # its own cookie
        stolen = await other_browser.post("/dashboard/login", data={**fields, "form_token": token})
        assert stolen.status_code == 403
        assert "callerloop_staff" not in (stolen.headers.get("set-cookie") or "")


async def test_sign_in_failures_are_limited(staffed: Database, agency: AgencyConfig) -> None:
    limiter = GuessLimiter(max_misses=3, window_seconds=600)
    async with client_for(staffed, agency, limiter=limiter) as client:
        for _ in range(3):
            assert (await sign_in(client, password="guess guess guess")).status_code == 401
        refused = await sign_in(client)  # even the right password, for a while
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert "Too many failed attempts" in refused.text
    async with client_for(staffed, agency, limiter=limiter, ip="198.51.100.99") as elsewhere:
        assert (await sign_in(elsewhere)).status_code == 303


async def test_sign_out_needs_the_pages_token(signed_in: httpx.AsyncClient) -> None:
    page = await signed_in.get("/dashboard")
    token = signed_in.cookies.get("callerloop_staff")
    assert token
    forged = await signed_in.post("/dashboard/logout", data={"form_token": "x" * 64})
    assert forged.headers["location"] == "/dashboard"
    assert (await signed_in.get("/dashboard")).status_code == 200  # still signed in
    genuine = await signed_in.post("/dashboard/logout", data={"form_token": form_token(page.text)})
    assert genuine.headers["location"] == "/dashboard/login"
    # The session is over on the server: the old cookie, sent again, signs nobody in.
    signed_in.cookies.set("callerloop_staff", token, domain="callerloop.test", path="/dashboard")
    assert (await signed_in.get("/dashboard")).status_code == 303


async def test_next_never_leaves_the_dashboard(staffed: Database, agency: AgencyConfig) -> None:
    async with client_for(staffed, agency) as client:
        for target in ("https://evil.example/", "//evil.example/dashboard", "/dashboard//evil"):
            response = await sign_in(client, next_=target)
            assert response.headers["location"] == "/dashboard"


async def test_dashboard_shows_every_chart_with_its_table(
    signed_in: httpx.AsyncClient, staffed: Database
) -> None:
    program_history(staffed, days=14)
    page = await signed_in.get("/dashboard", params={"agency": "testville"})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    charts = re.findall(r'src="(/dashboard/charts/[^"]+)"', page.text)
    tables = re.findall(r'href="(/dashboard/tables/[^"]+)"', page.text)
    assert len(charts) == len(tables) == 16
    for chart in charts:
        svg = await signed_in.get(chart.replace("&amp;", "&"))
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
        assert svg.text.lstrip().startswith("<?xml") and "<svg" in svg.text
    reasons = await signed_in.get("/dashboard/tables/not-texted", params={"format": "csv"})
    assert reasons.text.splitlines()[0] == "reason,calls"
    assert any(line.startswith("call type excluded,") for line in reasons.text.splitlines())
    satisfaction = await signed_in.get("/dashboard/tables/satisfaction")
    assert "<caption" in satisfaction.text and "overall" in satisfaction.text


async def test_dates_narrow_the_dashboard(signed_in: httpx.AsyncClient, staffed: Database) -> None:
    program_history(staffed, days=14)
    everything = await signed_in.get("/dashboard/tables/texts", params={"format": "csv"})
    one_day = await signed_in.get(
        "/dashboard/tables/texts",
        params={"format": "csv", "from": "2025-08-20", "to": "2025-08-20", "agency": "testville"},
    )
    days = [line.split(",")[0] for line in one_day.text.splitlines()[1:]]
    assert days == ["2025-08-20"]
    assert len(everything.text.splitlines()) > 10


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2025-13-01"}, "from: &#39;2025-13-01&#39; is not a date (YYYY-MM-DD)"),
        ({"from": "2025-10-02", "to": "2025-10-01"}, "from (2025-10-02) is after to (2025-10-01)"),
        ({"agency": "atlantis"}, "agency: unknown agency &#39;atlantis&#39;"),
    ],
)
async def test_bad_filters_get_a_clear_error(
    signed_in: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    for path in ("/dashboard", "/dashboard/comments", "/dashboard/tables/texts"):
        response = await signed_in.get(path, params=params)
        assert response.status_code == 400
        assert message in response.text


async def test_comments_inbox_shows_case_numbers_filters_low_scores_and_is_audited(
    signed_in: httpx.AsyncClient, staffed: Database
) -> None:
    at = datetime(2025, 9, 3, 15, tzinfo=UTC)
    survey_comment(staffed, "Nobody came.", score=1.0, case_number="C-25-071089", at=at)
    survey_comment(staffed, "Lovely officer.", score=5.0, case_number="C-25-071090", at=at)
    everything = await signed_in.get("/dashboard/comments")
    assert "Nobody came." in everything.text and "Lovely officer." in everything.text
    low = await signed_in.get("/dashboard/comments", params={"low": "1"})
    assert "Nobody came." in low.text and "C-25-071089" in low.text
    assert "Lovely officer." not in low.text
    views = [e for e in audit.latest(staffed) if e.action == "comments view"]
    assert [(v.actor, v.detail) for v in views] == [
        (USER, "2 comment(s); all"),
        (USER, "1 comment(s); all; low scores"),
    ]


async def test_opendata_serves_the_export(database: Database, agency: AgencyConfig) -> None:
    program_history(database, days=14)
    async with client_for(database, agency) as client:
        catalog = await client.get("/opendata/data.json")
        assert catalog.status_code == 200
        assert catalog.headers["content-type"] == "application/json"
        responses = await client.get("/opendata/testville/survey_responses.csv")
        assert responses.headers["content-type"] == "text/csv; charset=utf-8"
        index = await client.get("/opendata/")
        assert "testville/datapackage.json" in index.text
        assert (await client.get("/opendata/testville/nothing.csv")).status_code == 404
    files = export_files(database, {agency.id: agency}, BASE, datetime.now(UTC))
    assert responses.content == files["testville/survey_responses.csv"]


def test_users_add_from_the_command_line(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", database.url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        short = runner.invoke(cli_app, ["users", "add", "sgt.lee", "--password-stdin"], "short\n")
        added = runner.invoke(
            cli_app, ["users", "add", "sgt.lee", "--password-stdin"], f"{PASSWORD}\n"
        )
        again = runner.invoke(
            cli_app, ["users", "add", "sgt.lee", "--password-stdin"], f"{PASSWORD}\n"
        )
        bad_name = runner.invoke(
            cli_app, ["users", "add", "Sgt Lee", "--password-stdin"], f"{PASSWORD}\n"
        )
        listed = runner.invoke(cli_app, ["users", "list"])
    finally:
        get_settings.cache_clear()
    assert short.exit_code == 2 and "password: at least 12 characters" in short.output
    assert added.exit_code == 0, added.output
    assert again.exit_code == 2 and "already exists" in again.output
    assert bad_name.exit_code == 2 and "username 'Sgt Lee'" in bad_name.output
    assert listed.output.startswith("sgt.lee\t") and "active" in listed.output
    from callerloop.core.db import StaffUser

    with database.session() as session:
        user = session.get(StaffUser, "sgt.lee")
    assert user is not None and PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2id$")


async def test_response_rate_counts_a_call_in_its_agencys_month(
    signed_in: httpx.AsyncClient, staffed: Database
) -> None:
    """02:00 UTC on 1 September is still August in New York, where the answer is filed."""
    late_august = datetime(2025, 9, 1, 2, tzinfo=UTC)
    workflow_id = call_record(staffed, "AUG-1", late_august, priority=4, language="en")
    outbox_row_for_call(staffed, workflow_id, "survey", at=late_august)
    survey_response(staffed, {"overall": 5}, month="2025-08")
    table = await signed_in.get("/dashboard/tables/response-rate", params={"format": "csv"})
    # 1 of 1: Wilson's interval runs from 1 / (1 + 1.96²) = 0.207 to 1.
    assert table.text.splitlines() == [
        "month,surveys sent,surveys delivered,responses,rate over,response rate,"
        "rate 95% low,rate 95% high",
        "2025-08,1,1,1,delivered,1.0,0.207,1.0",
    ]


def test_a_withheld_text_is_not_counted_as_sent(database: Database, agency: AgencyConfig) -> None:
    """A text withdrawn before its hand-off (a safety stop overtook it) never went out."""
    outbox_row(database, status="queued")
    outbox_row(database, status="withheld")
    filters = dashboard_data.parse_filters({}, {agency.id: agency})
    table = dashboard_data.read(database, dashboard_data.delivery_rate, filters)
    assert sum(row[1] for row in table.rows) == 1
    assert dashboard_data.read(database, dashboard_data.texts_per_day, filters).summary.startswith(
        "1 texts sent"
    )


async def test_response_rates_and_intervals_match_the_hand_computed_example(
    signed_in: httpx.AsyncClient, staffed: Database
) -> None:
    """20 English surveys delivered, 7 answered (scores 5 5 4 4 4 2 1); 12 Spanish sent, 10
    delivered, 1 answered. By hand (Wilson, z = 1.96; tests/callerloop/test_survey_figures.py
    works each one out): English 7/20 = 0.35 (0.181 to 0.567), Spanish 1/10 = 0.1 (0.018
    to 0.404), both 8/30 = 0.267 (0.142 to 0.444). English speakers are 20/30 = 0.667 of
    those texted and 7/8 = 0.875 (0.529 to 0.978) of those who answered; Spanish speakers
    0.333 and 1/8 = 0.125 (0.022 to 0.471). Satisfied: 5 of 7 = 0.714 (0.359 to 0.918)."""
    surveyed_calls(staffed, "EN", 20, 7, scores=[5, 5, 4, 4, 4, 2, 1])
    surveyed_calls(staffed, "ES", 10, 1, language="es")
    surveyed_calls(staffed, "ESX", 2, 0, language="es", status="undelivered")

    async def csv_of(chart: str) -> list[str]:
        table = await signed_in.get(f"/dashboard/tables/{chart}", params={"format": "csv"})
        assert table.status_code == 200, table.text
        return table.text.splitlines()

    assert await csv_of("response-rate") == [
        "month,surveys sent,surveys delivered,responses,rate over,response rate,"
        "rate 95% low,rate 95% high",
        "2025-09,32,30,8,delivered,0.267,0.142,0.444",
    ]
    assert await csv_of("response-rate-language") == [
        "language,surveys sent,surveys delivered,responses,rate over,response rate,"
        "rate 95% low,rate 95% high,share of surveys,share of responses,share 95% low,"
        "share 95% high",
        "en,20,20,7,delivered,0.35,0.181,0.567,0.667,0.875,0.529,0.978",
        "es,12,10,1,delivered,0.1,0.018,0.404,0.333,0.125,0.022,0.471",
    ]
    # The same table answers "who answered vs who was texted".
    assert await csv_of("answered-vs-texted-language") == await csv_of("response-rate-language")
    assert (await csv_of("response-rate-priority"))[1:] == [
        "4,32,30,8,delivered,0.267,0.142,0.444,1.0,1.0,0.676,1.0"
    ]  # 8 of 8: from 8 / (8 + 1.96²) = 0.676 to 1
    assert (await csv_of("satisfaction-language"))[1:] == ["en,overall,7,5,0.714,0.359,0.918"]

    page = await signed_in.get("/dashboard", params={"agency": "testville"})
    assert "27% of 30 surveys delivered were answered (95% interval 14% to 44%)." in page.text
    assert (
        "By language: en 35% answered (18% to 57%), 67% of the surveys and 88% of the "
        "responses; es 10% answered (2% to 40%), 33% of the surveys and" in page.text
    )
    for chart in ("response-rate-language", "answered-vs-texted-language", "response-rate"):
        assert f"/dashboard/charts/{chart}.svg" in page.text
        svg = await signed_in.get(f"/dashboard/charts/{chart}.svg")
        assert svg.status_code == 200 and "<svg" in svg.text
    # Error bars: one per group with an interval, drawn beside the bars.
    language_rates = await signed_in.get("/dashboard/charts/response-rate-language.svg")
    assert language_rates.text.count('id="LineCollection') == 1


async def test_a_provider_without_receipts_is_counted_as_sent_and_said_so(
    signed_in: httpx.AsyncClient, staffed: Database
) -> None:
    """The local provider never reports delivery: the rate is over surveys sent, labelled;
    4 of 10 = 0.4, Wilson 0.168 to 0.687 (centre (0.4 + 0.192073) / 1.384146 = 0.427753,
    half 1.959964 · √(0.024 + 0.009604) / 1.384146 = 0.259573)."""
    surveyed_calls(staffed, "LOC", 10, 4, status="sent", provider="local")
    table = await signed_in.get("/dashboard/tables/response-rate", params={"format": "csv"})
    assert table.text.splitlines()[1:] == [
        "2025-09,10,,4,sent (no delivery receipts),0.4,0.168,0.687"
    ]
    page = await signed_in.get("/dashboard")
    assert (
        "40% of 10 surveys sent were answered (95% interval 17% to 69%). Counted as sent: "
        "the text provider reports no delivery." in page.text
    )
    assert "10 went through a provider that reports no delivery (never confirmed)." in page.text
