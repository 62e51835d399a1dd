"""The SQLite store: the connection, migrations and transactions. Every SQL statement haggle
runs lives in bot/store/: the queries in tournaments.py (tournaments, negotiations, turns) and
games.py (the Discord bot's players, games, settings, daily challenges), mixed into ``Store``.

One aiosqlite connection per ``Store``, in WAL mode (readers never block the writer; a crash
cannot corrupt the file), ``synchronous = NORMAL`` (a committed transaction survives a killed
process; only a power cut can lose the last few) and foreign keys on.

Schema changes are numbered SQL files in ``bot/store/migrations/`` (``0001_initial.sql``,
``0002_...``), applied in order at open, each in its own transaction that also sets
``PRAGMA user_version`` to its number. A database whose version is newer than the newest
migration this code knows was written by a newer haggle: it is refused, never touched.

Writes that belong together are one transaction: a negotiation and all its turns, a whole
imported file. Every sqlite3 error is turned into a ``StoreError`` that says what happened
and what to do (not a database, corrupt, locked, disk full, read-only); a failed transaction
is rolled back, so what was stored before stays intact.

Concurrent tasks share the connection; an asyncio lock serialises whole transactions so that
one task's statements never land inside another's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from bot.errors import StoreError
from bot.store.errors import store_error, translated
from bot.store.games import GameQueries
from bot.store.rows import (
    DailyChallengeRow,
    GameRow,
    GuildSettings,
    NegotiationRow,
    TournamentRow,
    TurnRow,
    pairing_key,
)
from bot.store.tournaments import TournamentQueries

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_S = 10.0
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped in ``bot/store/migrations``, numbered 1, 2, ... without gaps."""
    folder = resources.files("bot.store").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise RuntimeError(f"migration {entry.name} is not named NNNN_lowercase_name.sql")
            continue
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {versions}")
    return found


MIGRATIONS = load_migrations()
SCHEMA_VERSION = MIGRATIONS[-1].version


def _sql_statements(script: str) -> list[str]:
    """A migration script split into its statements (``executescript`` would commit first)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    if pending.strip() and not all(
            part.strip().startswith("--") for part in pending.strip().splitlines()):
        raise RuntimeError(f"migration ends in an unfinished statement: {pending.strip()[:80]!r}")
    return statements


# --------------------------------------------------------------------------- the store


class Store(TournamentQueries, GameQueries):
    """haggle's database. Open with ``await Store.open(path)`` (or ``async with``)."""

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = asyncio.Lock()

    # ----------------------------------------------------------------- open / close

    @classmethod
    async def open(cls, path: str | Path, *, create: bool = True,
                   busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S) -> Store:
        """Open (creating it when ``create``) and migrate the database at ``path``.

        Raises StoreError when the file is not SQLite, is corrupt, belongs to another program,
        was written by a newer haggle, or is locked longer than ``busy_timeout`` seconds.
        """
        path = Path(path).expanduser()
        if path.exists() and not path.is_file():
            raise StoreError(f"{path} is not a file; pass --db with a database file path")
        if not path.exists():
            if not create:
                raise StoreError(f"no database at {path}: run `haggle tournament` or "
                                 f"`haggle import-agreemate` with --db {path} first")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for {path}: {exc.strerror}") from exc
        try:
            conn = await aiosqlite.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(exc, path, "opening the database") from exc
        store = cls(path, conn)
        try:
            await store._setup()
        except BaseException:
            await conn.close()
            raise
        return store

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._conn.close()
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, "closing the database") from exc

    @translated("opening the database")
    async def _setup(self) -> None:
        conn = self._conn
        conn.row_factory = sqlite3.Row
        # The first statements that read the file: a file that is not SQLite fails here,
        # before anything is written to it. One read transaction, so the version and the
        # tables are of one moment even while another process migrates the file.
        await conn.execute("BEGIN")
        try:
            version = await self._user_version()
            tables = [] if version else await conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' LIMIT 5")
        finally:
            await self._rollback()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this haggle understands "
                f"(version {SCHEMA_VERSION}): it was written by a newer haggle. Upgrade haggle "
                f"to use it; this version leaves it untouched")
        if tables:
            names = ", ".join(r[0] for r in tables)
            raise StoreError(
                f"{self.path} is a SQLite database of another program (it holds {names} and "
                f"no haggle schema version); pass --db with another path")
        # execute_fetchall, never a half-read cursor: an unfinished read keeps a read lock, and
        # SQLite refuses a lock upgrade under it at once (deadlock avoidance), not after the
        # busy timeout, when another process is writing.
        mode = (await conn.execute_fetchall("PRAGMA journal_mode = WAL"))[0][0]
        if str(mode).lower() != "wal":
            log.warning("%s: could not switch to WAL mode (journal mode is %s)", self.path, mode)
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        if version == SCHEMA_VERSION:
            return
        # Another process may be migrating the same file right now: take the write lock first,
        # then read the version again, so what it already applied is never applied twice.
        # Each migration and its version bump land in one transaction, whole or not at all.
        for migration in MIGRATIONS[version:]:
            try:
                await conn.execute("BEGIN IMMEDIATE")
                if await self._user_version() < migration.version:
                    log.info("%s: applying migration %s", self.path, migration.name)
                    for statement in _sql_statements(migration.sql):
                        await conn.execute(statement)
                    await conn.execute(f"PRAGMA user_version = {migration.version}")
                await conn.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    async def _user_version(self) -> int:
        return (await self._conn.execute_fetchall("PRAGMA user_version"))[0][0]

    async def _rollback(self) -> None:
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction open (SQLite already rolled it back, e.g. on SQLITE_FULL)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error or cancellation.

        BEGIN is inside the try: a task cancelled while BEGIN waits on a locked database has
        still queued it on the connection's thread, and the ROLLBACK queued after it must undo
        it, or the connection would stay inside a transaction nobody owns.
        """
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, params))

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # ----------------------------------------------------------------- health

    @translated("checking the database")
    async def schema_version(self) -> int:
        return (await self._fetchone("PRAGMA user_version"))[0]

    @translated("checking the database")
    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok" for a healthy database, else the problems found."""
        rows = await self._fetchall("PRAGMA integrity_check")
        return "\n".join(str(r[0]) for r in rows)


__all__ = ["SCHEMA_VERSION", "DailyChallengeRow", "GameRow", "GuildSettings", "NegotiationRow",
           "Store", "TournamentRow", "TurnRow", "pairing_key"]
