"""What residents said back on the local stack, for the phone simulator to show beside the
outbox: each text a resident sent with the agency's answer (or why it was refused), and
notes on what a simulated resident did off the thread (answering the survey page).

Twilio sends a TwiML answer straight to the resident's phone: it never enters the outbox,
so the stack keeps it here. One JSON object per line in the data folder, appended by the
web app (the simulator's reply box) and by the dev stack (the demo residents) alike.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

LOG_NAME = "phone-replies.jsonl"


class Entry(StrEnum):
    REPLY = "reply"  # a text the resident sent, and the agency's answer
    NOTE = "note"  # something a simulated resident did off the thread


@dataclass(frozen=True)
class LoggedText:
    number: str  # the resident's (E.164)
    agency: str
    at: datetime
    kind: Entry
    text: str  # what the resident sent, or the note
    answer: str | None = None  # the agency's reply; None: silence (or refused)
    error: str | None = None  # why the webhook refused it
    simulated: bool = False  # sent by a demo resident, not typed in the simulator

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "at": self.at.isoformat()}, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> LoggedText:
        fields = json.loads(line)
        return cls(
            **{**fields, "at": datetime.fromisoformat(fields["at"]), "kind": Entry(fields["kind"])}
        )


def now() -> datetime:
    return datetime.now(UTC)


class ConversationLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def in_folder(cls, data_dir: Path) -> ConversationLog:
        return cls(data_dir / LOG_NAME)

    def add(self, entry: LoggedText) -> None:
        # One short line per write, opened for appending: two processes adding at once
        # interleave whole lines.
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as log:
                log.write(entry.to_json() + "\n")

    def entries(self) -> list[LoggedText]:
        """Every entry, oldest first; a line cut short by a crash is left out."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                entries.append(LoggedText.from_json(line))
            except (ValueError, TypeError, KeyError):
                continue
        return entries
