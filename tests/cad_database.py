"""A CAD reporting table for the poller's tests, shaped like CentralSquare Inform's
`Response_Master_Incident` (the column names of the real export), with a `LastChanged`
column the CAD stamps on every change, as a trigger or rowversion would."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callerloop.cad.export_rows import TIME_COLUMNS
from callerloop.core.agency_config import AgencyConfig
from tests.factories import make_agency

TABLE = "Response_Master_Incident"
WATERMARK = "LastChanged"
COLUMNS = {
    "incident_id": "Master_Incident_Number",
    "call_type": "Problem",
    "priority": "Priority_Number",
    "source": "Call_Reception",
    "created": "Response_Date",
    "dispatched": "Time_First_Unit_Assigned",
    "enroute": "Time_First_Unit_Enroute",
    "on_scene": "Time_First_Unit_Arrived",
    "first_closed": "Time_CallClosed",
    "final_closed": "Time_CallClosed_Final",
    "reopened": "Call_Is_Reopened",
    "disposition": "Call_Disposition",
    "caller_phone": "Call_Back_Phone",
    "caller_language": "Caller_Language",
}


def incidents_table(columns: Mapping[str, str]) -> sa.Table:
    """The table, its columns named by `columns` (logical → physical, as
    `[replay.columns]`), typed as a CAD database types them."""

    def column_type(key: str) -> sa.types.TypeEngine[Any]:
        if key in TIME_COLUMNS:
            return sa.DateTime()
        return sa.Integer() if key in ("priority", "final_priority") else sa.String(200)

    return sa.Table(
        TABLE,
        sa.MetaData(),
        *(
            sa.Column(name, column_type(key), primary_key=key == "incident_id")
            for key, name in columns.items()
        ),
        sa.Column(WATERMARK, sa.DateTime(), nullable=False),
    )


def polled_agency(**poll: Any) -> AgencyConfig:
    """The test agency reading this table: `[cad.poll]` with `poll`'s overrides."""
    return make_agency(
        cad={
            "sources": {"Phone": "phone", "Self": "officer"},
            "poll": {
                "table": TABLE,
                "watermark": WATERMARK,
                "interval": "PT10S",
                "overlap": "PT1M",
                "start": "beginning",
                **poll,
            },
        },
        replay={"columns": COLUMNS},
    )


def folder_agency(folder: Path) -> AgencyConfig:
    """The test agency reading the exports dropped in `folder` (`[cad.folder]`)."""
    return make_agency(
        cad={
            "sources": {"Phone": "phone", "Self": "officer"},
            "folder": {"path": str(folder), "interval": "PT10S"},
        },
        replay={"columns": COLUMNS},
    )


class CadTable:
    """The CAD side: rows inserted and changed as a CAD would, each change stamped."""

    def __init__(self, engine: Engine, columns: Mapping[str, str] = COLUMNS) -> None:
        self.engine = engine
        self.columns = dict(columns)
        self.table = incidents_table(columns)
        self.table.metadata.create_all(engine)

    def insert(self, changed_at: datetime, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                self.table.insert().values({**self._named(values), WATERMARK: changed_at})
            )

    def update(self, incident_id: str, changed_at: datetime, **values: Any) -> None:
        key = self.table.c[self.columns["incident_id"]]
        with self.engine.begin() as connection:
            connection.execute(
                self.table.update()
                .where(key == incident_id)
                .values({**self._named(values), WATERMARK: changed_at})
            )

    def newest_change(self) -> datetime | None:
        with self.engine.connect() as connection:
            newest: datetime | None = connection.execute(
                sa.select(sa.func.max(self.table.c[WATERMARK]))
            ).scalar()
            return newest

    def _named(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {self.columns[key]: value for key, value in values.items()}


def call_row(incident_id: str, created: datetime, **values: Any) -> dict[str, Any]:
    """An eligible resident's call as first entered (priority 3, a mobile number)."""
    return {
        "incident_id": incident_id,
        "call_type": "THEFT REPORT",
        "priority": 3,
        "source": "Phone",
        "created": created,
        "caller_phone": "+17035550142",
        "caller_language": "en",
        **values,
    }


MINUTE = timedelta(minutes=1)


def export_file(
    path: Path, rows: list[dict[str, Any]], columns: Mapping[str, str] = COLUMNS
) -> Path:
    """A CSV export as a CAD writes one on a schedule: every column, times as text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns.values()))
        writer.writeheader()
        for row in rows:
            writer.writerow({columns[key]: _cell(value) for key, value in row.items()})
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
