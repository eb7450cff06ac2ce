"""A throwaway PostgreSQL server for the tests, from Debian's `postgresql` package.

initdb into a fresh folder, `postgres` listening on a unix socket in that folder only (no
TCP port to collide with anything), durability off (nothing here must survive a crash),
stopped and deleted at the end. PostgreSQL refuses to run as root: as root the server runs
as the `postgres` system user (or `nobody`), which owns the folder.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

BINARIES = Path("/usr/lib/postgresql")
SUPERUSER = "callerloop"
PORT = 5432  # only names the socket file: the server listens on no TCP port
# Tuning for tests: every write skips the disk flush.
FAST_AND_UNSAFE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


FOLDER_PREFIX = "callerloop-pg-"
STALE_AFTER_SECONDS = 3600
PR_SET_PDEATHSIG = 1


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the server would not start."""


def find_binaries() -> Path:
    """The bin folder of the newest PostgreSQL installed from Debian's packages."""
    candidates = sorted(
        (p for p in BINARIES.glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise PostgresUnavailable(
            f"no PostgreSQL server under {BINARIES}/*/bin: apt install postgresql (.ci/run does)"
        )
    return candidates[-1]


def _server_user() -> str | None:
    """Who runs the server: us, unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresUnavailable("running as root and no `postgres` or `nobody` user to run as")


@dataclass
class PostgresServer:
    folder: Path
    process: subprocess.Popen[bytes]
    _admin: psycopg.Connection[tuple[object, ...]] | None = field(default=None, repr=False)

    @property
    def socket_dir(self) -> Path:
        return self.folder

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}&port={PORT}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(
                host=str(self.socket_dir),
                port=PORT,
                user=SUPERUSER,
                dbname="postgres",
                autocommit=True,
            )
        return self._admin

    def create_database(self, template: str = "template0", name: str | None = None) -> str:
        """A new database, copied from `template` (an empty one by default)."""
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        self.admin().execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return name

    def drop_database(self, name: str) -> None:
        self.admin().execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def stop(self) -> None:
        self._shut_down()
        shutil.rmtree(self.folder, ignore_errors=True)

    def go_down(self) -> None:
        """Stops the server, keeping its data: every client's connection is cut, and new
        ones are refused until `come_back` (a database outage, as clients see one)."""
        self._shut_down()

    def come_back(self, timeout: float = 60) -> None:
        self.process = _launch(self.folder)
        _wait_until_up(self, timeout)

    def _shut_down(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _stop_with_us() -> None:
    """In the server's process before it starts: if the test run is killed outright, the
    kernel stops the server too (SIGINT: PostgreSQL's fast shutdown). Linux only."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_folders() -> None:
    """Folders of test runs killed before they could clean up: old, and no server alive
    in them (other test runs may be using theirs right now)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            if time.time() - folder.stat().st_mtime < STALE_AFTER_SECONDS:
                continue
            pid_file = folder / "data" / "postmaster.pid"
            if pid_file.exists() and _alive(int(pid_file.read_text().split()[0])):
                continue
        except (OSError, ValueError, IndexError):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def start_server(timeout: float = 60) -> PostgresServer:
    """Call from the main thread: the server stops when the thread that started it ends."""
    binaries = find_binaries()
    user = _server_user()
    remove_stale_folders()
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    group = pwd.getpwnam(user).pw_gid if user else None
    extra_groups: list[int] | None = [] if user else None  # drop root's groups too
    data = folder / "data"
    initdb = subprocess.run(
        [
            str(binaries / "initdb"),
            "--pgdata",
            str(data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        user=user,
        group=group,
        extra_groups=extra_groups,
    )
    if initdb.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {initdb.stderr.strip()[-800:]}")
    server = PostgresServer(folder, _launch(folder))
    _wait_until_up(server, timeout)
    return server


def _launch(folder: Path) -> subprocess.Popen[bytes]:
    binaries = find_binaries()
    user = _server_user()
    group = pwd.getpwnam(user).pw_gid if user else None
    extra_groups: list[int] | None = [] if user else None  # drop root's groups too
    with (folder / "server.log").open("ab") as log_file:
        return subprocess.Popen(
            [
                str(binaries / "postgres"),
                "-D",
                str(folder / "data"),
                "-k",
                str(folder),
                "-p",
                str(PORT),
                "-c",
                "listen_addresses=",
                *(item for setting in FAST_AND_UNSAFE for item in ("-c", setting)),
            ],
            cwd=folder,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_stop_with_us,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )


def _wait_until_up(server: PostgresServer, timeout: float) -> None:
    log = server.folder / "server.log"
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.admin()
            return
        except psycopg.OperationalError as error:
            if server.process.poll() is not None or time.monotonic() > deadline:
                output = log.read_text(errors="replace")[-800:] if log.exists() else ""
                server.stop()
                raise PostgresUnavailable(f"PostgreSQL did not start: {error}\n{output}") from None
            time.sleep(0.05)


def server_or_skip() -> PostgresServer:
    """A started server, or the test skipped saying why (a failure under
    CALLERLOOP_REQUIRE_ALL=1, see tests/conftest.py)."""
    try:
        return start_server()
    except PostgresUnavailable as error:
        pytest.skip(str(error))


def empty_tables(engine: Engine) -> None:
    """Every callerloop table emptied and its ids restarted: 30 ms, where a fresh copy of
    a template database takes 300. Replica mode skips the audit log's append-only
    triggers, for this session only."""
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())
        sequences = connection.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
        ).scalars()
        for sequence in list(sequences):
            connection.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
