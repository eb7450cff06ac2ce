"""The published files: per agency `survey_responses.csv`, `survey_scores.csv` and a
Frictionless `datapackage.json` (table schemas with types, descriptions, units, licence),
and a DCAT-US `data.json` catalog (the whole deployment's, and each agency's) that CKAN,
Socrata and ArcGIS Hub harvest. `callerloop opendata export` writes them to a folder; the
web app serves the same bytes under `/opendata/`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.opendata.gather import gather, scale_questions
from callerloop.opendata.tables import (
    BREAKDOWNS,
    Bounded,
    ResponsesRow,
    ScoresRow,
    Tables,
    build_tables,
)
from callerloop.survey.figures import Basis

RESPONSES_FILE = "survey_responses.csv"
SCORES_FILE = "survey_scores.csv"
PACKAGE_FILE = "datapackage.json"
CATALOG_FILE = "data.json"
PATH_PREFIX = "/opendata"

_LABELS: list[dict[str, Any]] = [
    {
        "name": "breakdown",
        "type": "string",
        "title": "Breakdown",
        "description": "What the row counts: 'cell' is one month, priority, call-type group "
        "and language; 'priority', 'call_type_group' and 'language' are the month's total "
        "for one value of that column (the other columns empty); 'month' is the whole "
        "month. Never add up rows of different breakdowns.",
        "constraints": {"required": True, "enum": list(BREAKDOWNS)},
    },
    {
        "name": "month",
        "type": "yearmonth",
        "title": "Month",
        "description": "The month the calls came in, in the agency's time zone.",
        "constraints": {"required": True},
    },
    {
        "name": "agency",
        "type": "string",
        "title": "Agency",
        "description": "The agency's id.",
        "constraints": {"required": True},
    },
    {
        "name": "priority",
        "type": "integer",
        "title": "Call priority",
        "description": "The call's priority in the agency's dispatch system.",
    },
    {
        "name": "call_type_group",
        "type": "string",
        "title": "Call-type group",
        "description": "The agency's grouping of call types ('other': any call type not in "
        "a group).",
    },
    {
        "name": "language",
        "type": "string",
        "title": "Language",
        "description": "The language the caller was texted in (ISO 639-1).",
    },
]
_SUPPRESSED = {
    "name": "suppressed",
    "type": "boolean",
    "title": "Suppressed",
    "description": "True when the values of this row are withheld: fewer than the minimum "
    "number of answers, or withheld so that another small group cannot be worked out by "
    "subtraction.",
    "constraints": {"required": True},
}


def _bounds(name: str, of: str) -> list[dict[str, Any]]:
    """The low and high ends of the 95 % Wilson score interval of the column `name`."""
    return [
        {
            "name": f"{name}_{end}",
            "type": "number",
            "title": f"{of}: 95 % interval, {end}",
            "description": f"The {end} end of the 95 % Wilson score interval of {name}.",
            "unit": "ratio (0-1)",
            "constraints": {"minimum": 0, "maximum": 1},
        }
        for end in ("low", "high")
    ]


_RESPONSE_FIELDS: list[dict[str, Any]] = [
    *_LABELS,
    {
        "name": "texts_sent",
        "type": "integer",
        "title": "Texts sent",
        "description": "Texts handed to the carrier for these calls (all kinds).",
        "unit": "texts",
        "constraints": {"minimum": 0},
    },
    {
        "name": "surveys_sent",
        "type": "integer",
        "title": "Surveys sent",
        "description": "Survey invitations handed to the carrier (delivered or not).",
        "unit": "texts",
        "constraints": {"minimum": 0},
    },
    {
        "name": "surveys_delivered",
        "type": "integer",
        "title": "Surveys delivered",
        "description": "Survey invitations the carrier confirmed delivered (a delivery "
        "receipt). Empty when response_rate_basis is 'sent': the texts went through a "
        "provider that reports no delivery.",
        "unit": "texts",
        "constraints": {"minimum": 0},
    },
    {
        "name": "responses",
        "type": "integer",
        "title": "Responses",
        "description": "Surveys answered, completely or in part, on the survey page or in "
        "the text thread.",
        "unit": "responses",
        "constraints": {"minimum": 0},
    },
    {
        "name": "response_rate_basis",
        "type": "string",
        "title": "Response rate over",
        "description": "What the response rate and share_of_surveys count: 'delivered' "
        "(surveys_delivered), or 'sent' (surveys_sent) in a month when some invitations "
        "went through a provider that reports no delivery. The same for a whole month.",
        "constraints": {"enum": [b.value for b in Basis]},
    },
    {
        "name": "response_rate",
        "type": "number",
        "title": "Response rate",
        "description": "AAPOR response rate 6: responses (complete or partial) divided by "
        "the survey invitations delivered (surveys_delivered, or surveys_sent: see "
        "response_rate_basis). Empty when no invitation counts, or when there are more "
        "responses than confirmed deliveries (receipts went missing).",
        "unit": "ratio (0-1)",
        "constraints": {"minimum": 0, "maximum": 1},
    },
    *_bounds("response_rate", "Response rate"),
    {
        "name": "share_of_surveys",
        "type": "number",
        "title": "Share of the month's surveys",
        "description": "This row's part of the month's survey invitations (delivered, or "
        "sent: see response_rate_basis): who was texted. Compare with share_of_responses, "
        "who answered. Empty for the month's row, or when the month's row is suppressed.",
        "unit": "ratio (0-1)",
        "constraints": {"minimum": 0, "maximum": 1},
    },
    {
        "name": "share_of_responses",
        "type": "number",
        "title": "Share of the month's responses",
        "description": "This row's part of the month's responses: who answered. Empty for "
        "the month's row, or when the month's row is suppressed.",
        "unit": "ratio (0-1)",
        "constraints": {"minimum": 0, "maximum": 1},
    },
    *_bounds("share_of_responses", "Share of the month's responses"),
    _SUPPRESSED,
]
_SCORE_FIELDS: list[dict[str, Any]] = [
    *_LABELS,
    {
        "name": "question",
        "type": "string",
        "title": "Question",
        "description": "The survey question's id (see the data package description).",
        "constraints": {"required": True},
    },
    {
        "name": "answered",
        "type": "integer",
        "title": "Answers",
        "description": "Answers on the scale (skipped and 'does not apply' left out).",
        "unit": "answers",
        "constraints": {"minimum": 0},
    },
    {
        "name": "mean_score",
        "type": "number",
        "title": "Mean score",
        "description": "Mean answer, 1 (very dissatisfied, strongly disagree) to 5 (very "
        "satisfied, strongly agree).",
        "unit": "score (1-5)",
        "constraints": {"minimum": 1, "maximum": 5},
    },
    {
        "name": "share_satisfied",
        "type": "number",
        "title": "Share satisfied",
        "description": "Share of answers of 4 or 5 (satisfied or very satisfied; agree or "
        "strongly agree).",
        "unit": "ratio (0-1)",
        "constraints": {"minimum": 0, "maximum": 1},
    },
    *_bounds("share_satisfied", "Share satisfied"),
    _SUPPRESSED,
]


@dataclass(frozen=True)
class AgencyTables:
    agency: AgencyConfig
    tables: Tables


def agency_tables(db: Database, agency: AgencyConfig) -> AgencyTables:
    tallies = gather(db, agency)
    questions = scale_questions(agency)
    return AgencyTables(
        agency, build_tables(agency.id, tallies, questions, agency.open_data.min_responses)
    )


def export_files(
    db: Database, agencies: Mapping[str, AgencyConfig], base_url: str, now: datetime
) -> dict[str, bytes]:
    """Every published file by its path under the open-data root ("ottawa/data.json")."""
    files: dict[str, bytes] = {}
    datasets = []
    for agency_id in sorted(agencies):
        published = agency_tables(db, agencies[agency_id])
        files[f"{agency_id}/{RESPONSES_FILE}"] = responses_csv(published.tables.responses)
        files[f"{agency_id}/{SCORES_FILE}"] = scores_csv(published.tables.scores)
        files[f"{agency_id}/{PACKAGE_FILE}"] = _json(data_package(published, now))
        dataset = dcat_dataset(published, base_url, now)
        files[f"{agency_id}/{CATALOG_FILE}"] = _json(dcat_catalog([dataset]))
        datasets.append(dataset)
    files[CATALOG_FILE] = _json(dcat_catalog(datasets))
    return files


def _labels(agency: str, row: ResponsesRow | ScoresRow) -> list[object]:
    key = row.key
    return [key.breakdown, key.month, agency, key.priority, key.call_type_group, key.language]


def _csv(header: list[str], rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            ["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row]
        )
    return out.getvalue().encode("utf-8")


def responses_csv(rows: list[ResponsesRow]) -> bytes:
    return _csv(
        [f["name"] for f in _RESPONSE_FIELDS],
        [
            [
                *_labels(r.agency, r),
                r.texts_sent,
                r.surveys_sent,
                r.surveys_delivered,
                r.responses,
                r.response_rate_basis,
                *_bounded(r.response_rate),
                r.share_of_surveys,
                *_bounded(r.share_of_responses),
                r.suppressed,
            ]
            for r in rows
        ],
    )


def scores_csv(rows: list[ScoresRow]) -> bytes:
    return _csv(
        [f["name"] for f in _SCORE_FIELDS],
        [
            [
                *_labels(r.agency, r),
                r.question,
                r.answered,
                r.mean_score,
                *_bounded(r.share_satisfied),
                r.suppressed,
            ]
            for r in rows
        ],
    )


def _bounded(figure: Bounded) -> list[object]:
    return [figure.value, figure.low, figure.high]


def _title(agency: AgencyConfig) -> str:
    return agency.open_data.title or f"{agency.agency.name}: caller survey results"


def _description(agency: AgencyConfig) -> str:
    if agency.open_data.description:
        return agency.open_data.description
    questions = "; ".join(
        f"{q.id} ({q.kind})" for q in agency.survey.questions if q.kind != "comment"
    )
    return (
        f"Results of the short survey {agency.agency.name} texts to people who called the "
        "police, about a day after the call, by month, call priority, call-type group and "
        f"language. Groups with fewer than {agency.open_data.min_responses} answers are "
        "withheld, as are the groups needed so that they cannot be worked out from totals. "
        "The response rate is AAPOR's response rate 6 (responses over invitations "
        "delivered); rates and shares come with their 95 % Wilson score interval. "
        f"Free-text comments are never published. Questions: {questions}."
    )


def data_package(published: AgencyTables, now: datetime) -> dict[str, Any]:
    agency = published.agency
    licence = agency.open_data.licence
    return {
        "profile": "tabular-data-package",
        "name": f"{agency.id}-caller-survey-results",
        "title": _title(agency),
        "description": _description(agency),
        "created": now.replace(microsecond=0).isoformat(),
        "keywords": list(agency.open_data.keywords),
        "licenses": [{"name": licence.name, "title": licence.title, "path": licence.path}],
        "contributors": [
            {"title": agency.open_data.publisher or agency.agency.name, "role": "publisher"}
        ],
        "resources": [
            _resource(
                "survey-responses", RESPONSES_FILE, "Texts, surveys and responses", _RESPONSE_FIELDS
            ),
            _resource("survey-scores", SCORES_FILE, "Scores per question", _SCORE_FIELDS),
        ],
    }


def _resource(name: str, path: str, title: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "path": path,
        "title": title,
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "schema": {"fields": fields, "missingValues": [""]},
    }


def _months(published: AgencyTables) -> list[str]:
    return sorted({row.key.month for row in published.tables.responses})


def dcat_dataset(published: AgencyTables, base_url: str, now: datetime) -> dict[str, Any]:
    """One DCAT-US 1.1 dataset (Project Open Data metadata schema)."""
    agency = published.agency
    open_data = agency.open_data
    folder = f"{base_url.rstrip('/')}{PATH_PREFIX}/{agency.id}/"
    contact: dict[str, str] = {
        "@type": "vcard:Contact",
        "fn": open_data.contact_name or open_data.publisher or agency.agency.name,
    }
    if open_data.contact_email:
        contact["hasEmail"] = f"mailto:{open_data.contact_email}"
    dataset: dict[str, Any] = {
        "@type": "dcat:Dataset",
        "identifier": folder,
        "title": _title(agency),
        "description": _description(agency),
        "keyword": list(open_data.keywords),
        "modified": now.date().isoformat(),
        "publisher": {
            "@type": "org:Organization",
            "name": open_data.publisher or agency.agency.name,
        },
        "contactPoint": contact,
        "accessLevel": "public",
        "license": open_data.licence.path,
        "accrualPeriodicity": "R/P1M",
        "describedBy": folder + PACKAGE_FILE,
        "describedByType": "application/json",
        "distribution": [
            _distribution(
                folder + RESPONSES_FILE, "Texts, surveys and responses", "text/csv", "CSV"
            ),
            _distribution(folder + SCORES_FILE, "Scores per question", "text/csv", "CSV"),
            _distribution(
                folder + PACKAGE_FILE, "Frictionless data package", "application/json", "JSON"
            ),
        ],
    }
    months = _months(published)
    if months:
        dataset["temporal"] = f"{months[0]}-01/{_month_end(months[-1]).isoformat()}"
    if open_data.landing_page:
        dataset["landingPage"] = open_data.landing_page
    return dataset


def _distribution(url: str, title: str, media_type: str, format_: str) -> dict[str, str]:
    return {
        "@type": "dcat:Distribution",
        "downloadURL": url,
        "mediaType": media_type,
        "format": format_,
        "title": title,
    }


def _month_end(month: str) -> date:
    year, number = (int(part) for part in month.split("-"))
    following = date(year + number // 12, number % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def dcat_catalog(datasets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "@context": "https://project-open-data.cio.gov/v1.1/schema/catalog.jsonld",
        "@type": "dcat:Catalog",
        "conformsTo": "https://project-open-data.cio.gov/v1.1/schema",
        "describedBy": "https://project-open-data.cio.gov/v1.1/schema/catalog.json",
        "dataset": datasets,
    }


def _json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
