"""The SQLite store. Every SQL statement haggle runs lives in this module.

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
import functools
import json
import logging
import re
import sqlite3
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Mapping, Sequence

import aiosqlite

from bot.errors import StoreError

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_S = 10.0
_VARIABLES_PER_QUERY = 900  # below SQLite's oldest limit of 999 bound variables per statement
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


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class TournamentRow:
    id: int
    name: str
    kind: str  # "tournament" or "reference"
    config: dict[str, Any]
    agents: dict[str, Any]
    models: dict[str, Any]
    seed: int | None
    planned: int
    source: str | None
    started_at: str
    finished_at: str | None
    stored: int  # negotiations stored so far


@dataclass(frozen=True)
class NegotiationRow:
    id: int
    tournament: str
    buyer: str
    seller: str
    scenario_id: str
    repetition: int
    scenario: dict[str, Any]
    first_mover: str
    max_turns: int
    outcome: str
    deal_price: float | None
    error: str | None
    started_at: str | None
    seconds: float | None
    metrics: dict[str, Any]
    extra: dict[str, Any]

    @property
    def pairing(self) -> str:
        return pairing_key(self.buyer, self.seller)


@dataclass(frozen=True)
class TurnRow:
    negotiation_id: int
    idx: int
    role: str
    act: str
    label: str | None
    price: float | None
    utterance: str
    thought: str | None
    seconds: float | None
    prompt_tokens: int | None
    prompt_tokens_evaluated: int | None
    completion_tokens: int | None
    repaired: bool
    fallback: bool
    guard: str | None


@dataclass(frozen=True)
class GameRow:
    id: int
    guild_id: int | None
    channel_id: int
    thread_id: int | None
    player_id: int
    scenario_id: str
    scenario: dict[str, Any]
    agent: str
    human_role: str
    status: str  # "active" or "finished"
    state: dict[str, Any]
    outcome: str | None
    deal_price: float | None
    metrics: dict[str, Any] | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class GuildSettings:
    guild_id: int
    default_agent: str | None = None
    scenario_set: str | None = None
    max_turns: int | None = None
    game_channel: int | None = None
    settings: Mapping[str, Any] | None = None
    updated_at: str | None = None


def pairing_key(buyer: str, seller: str) -> str:
    return f"{buyer} vs {seller}"


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


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError as exc:  # NaN or infinity: a bug upstream, not something to store
        raise StoreError(f"cannot store a non-finite number in JSON: {exc}") from None


def _bool(value: Any) -> int:
    return 1 if value else 0


# --------------------------------------------------------------------------- errors


def _store_error(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """A StoreError that says what went wrong with ``path`` and what to do about it."""
    text = str(exc)
    low = text.lower()
    if "file is not a database" in low or "malformed" in low or "not a database" in low:
        return StoreError(
            f"{path} is not a haggle database: it is not SQLite or it is corrupt ({text}). "
            f"Nothing was written to it. Move it away, or pass --db with another path; "
            f"`sqlite3 {path} 'PRAGMA integrity_check'` says more about a damaged file")
    if "locked" in low or "busy" in low:
        return StoreError(
            f"{path} is locked by another process while {doing} ({text}): wait for the other "
            f"haggle command (or sqlite3 session) to finish, or use another --db")
    if "disk is full" in low or "database or disk is full" in low:
        return StoreError(
            f"disk full while {doing} in {path}: the write was rolled back and everything stored "
            f"before is intact; free some disk space and rerun the same command to continue")
    if "readonly" in low or "read-only" in low:
        return StoreError(f"{path} is read-only ({text}): make it writable or use another --db")
    if "unable to open" in low:
        return StoreError(f"cannot open {path} ({text}): check that its folder exists and is "
                          f"writable")
    return StoreError(f"database error while {doing} in {path}: {text}")


def _translated(doing: str):
    """Decorator: sqlite3 errors raised by the method become StoreErrors naming the file."""

    def wrap(method):
        @functools.wraps(method)
        async def inner(self: "Store", *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise _store_error(exc, self.path, doing) from exc

        return inner

    return wrap


# --------------------------------------------------------------------------- the store


class Store:
    """haggle's database. Open with ``await Store.open(path)`` (or ``async with``)."""

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = asyncio.Lock()

    # ----------------------------------------------------------------- open / close

    @classmethod
    async def open(cls, path: str | Path, *, create: bool = True,
                   busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S) -> "Store":
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
            raise _store_error(exc, path, "opening the database") from exc
        store = cls(path, conn)
        try:
            await store._setup()
        except BaseException:
            await conn.close()
            raise
        return store

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._conn.close()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "closing the database") from exc

    @_translated("opening the database")
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

    @_translated("checking the database")
    async def schema_version(self) -> int:
        return (await self._fetchone("PRAGMA user_version"))[0]

    @_translated("checking the database")
    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok" for a healthy database, else the problems found."""
        rows = await self._fetchall("PRAGMA integrity_check")
        return "\n".join(str(r[0]) for r in rows)

    # ----------------------------------------------------------------- tournaments

    _TOURNAMENT_SELECT = """
        SELECT t.id, t.name, t.kind, t.config, t.agents, t.models, t.seed, t.planned, t.source,
               t.started_at, t.finished_at,
               (SELECT count(*) FROM negotiations AS n WHERE n.tournament_id = t.id) AS stored
        FROM tournaments AS t"""

    @staticmethod
    def _tournament(row: sqlite3.Row) -> TournamentRow:
        return TournamentRow(
            id=row["id"], name=row["name"], kind=row["kind"], config=json.loads(row["config"]),
            agents=json.loads(row["agents"]), models=json.loads(row["models"]), seed=row["seed"],
            planned=row["planned"], source=row["source"], started_at=row["started_at"],
            finished_at=row["finished_at"], stored=row["stored"])

    @_translated("reading tournaments")
    async def tournament(self, name: str) -> TournamentRow | None:
        row = await self._fetchone(self._TOURNAMENT_SELECT + " WHERE t.name = ?", (name,))
        return None if row is None else self._tournament(row)

    @_translated("reading tournaments")
    async def tournaments(self) -> list[TournamentRow]:
        rows = await self._fetchall(self._TOURNAMENT_SELECT + " ORDER BY t.id")
        return [self._tournament(r) for r in rows]

    @_translated("creating a tournament")
    async def create_tournament(self, name: str, *, config: Mapping[str, Any], planned: int,
                                kind: str = "tournament", agents: Mapping[str, Any] | None = None,
                                models: Mapping[str, Any] | None = None, seed: int | None = None,
                                source: str | None = None) -> TournamentRow:
        async with self._transaction() as conn:
            try:
                await conn.execute(
                    "INSERT INTO tournaments (name, kind, config, agents, models, seed, planned,"
                    " source, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, kind, _json(config), _json(agents or {}), _json(models or {}), seed,
                     planned, source, now()))
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise StoreError(f"a tournament named {name!r} already exists in {self.path}"
                                     ) from None
                raise
        created = await self.tournament(name)
        assert created is not None
        return created

    @_translated("finishing a tournament")
    async def finish_tournament(self, tournament_id: int) -> None:
        async with self._transaction() as conn:
            await conn.execute("UPDATE tournaments SET finished_at = ? WHERE id = ?",
                               (now(), tournament_id))

    # ----------------------------------------------------------------- negotiations

    @_translated("reading negotiations")
    async def done_keys(self, tournament_id: int) -> set[tuple[str, str, str, int]]:
        """(buyer, seller, scenario id, repetition) of every stored negotiation."""
        rows = await self._fetchall(
            "SELECT buyer, seller, scenario_id, repetition FROM negotiations"
            " WHERE tournament_id = ?", (tournament_id,))
        return {(r[0], r[1], r[2], r[3]) for r in rows}

    @_translated("storing a negotiation")
    async def save_negotiation(self, tournament_id: int, record: Mapping[str, Any], *,
                               repetition: int = 0,
                               extra: Mapping[str, Any] | None = None) -> int | None:
        """Store one negotiation and its turns in one transaction.

        ``record`` is ``NegotiationRecord.to_dict()`` (or the same shape; turns may carry a
        ``label``). Returns the new row id, or None when that (buyer, seller, scenario,
        repetition) is already stored: a rerun never duplicates.
        """
        async with self._transaction() as conn:
            return await self._insert_negotiation(conn, tournament_id, record, repetition, extra)

    @_translated("storing negotiations")
    async def save_negotiations(
        self, tournament_id: int,
        items: Iterable[tuple[Mapping[str, Any], int, Mapping[str, Any] | None]],
    ) -> int:
        """Store many (record, repetition, extra) in ONE transaction; returns how many were new."""
        added = 0
        async with self._transaction() as conn:
            for record, repetition, extra in items:
                if await self._insert_negotiation(conn, tournament_id, record, repetition, extra):
                    added += 1
        return added

    @staticmethod
    async def _insert_negotiation(conn: aiosqlite.Connection, tournament_id: int,
                                  record: Mapping[str, Any], repetition: int,
                                  extra: Mapping[str, Any] | None) -> int | None:
        buyer, seller = record["agents"]["buyer"], record["agents"]["seller"]
        scenario = record["scenario"]
        rows = await conn.execute_fetchall(  # one round trip to the database thread
            "INSERT INTO negotiations (tournament_id, pairing, buyer, seller, scenario_id,"
            " repetition, scenario, first_mover, max_turns, outcome, deal_price, error,"
            " started_at, seconds, metrics, extra)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (tournament_id, buyer, seller, scenario_id, repetition) DO NOTHING"
            " RETURNING id",
            (tournament_id, pairing_key(buyer, seller), buyer, seller, str(scenario["id"]),
             repetition, _json(scenario), record["first_mover"], record["max_turns"],
             record["outcome"], record["deal_price"], record.get("error"),
             record.get("started_at") or None, record.get("seconds"),
             _json(record.get("metrics", {})), _json(extra or {})))
        if not rows:
            return None
        negotiation_id = rows[0][0]
        await conn.executemany(
            "INSERT INTO turns (negotiation_id, idx, role, act, label, price, utterance, thought,"
            " seconds, prompt_tokens, prompt_tokens_evaluated, completion_tokens, repaired,"
            " fallback, guard) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(negotiation_id, i, t["role"], t["act"], t.get("label"), t.get("price"),
              t.get("utterance") or "", t.get("thought"), t.get("seconds"),
              t.get("prompt_tokens"), t.get("prompt_tokens_evaluated"),
              t.get("completion_tokens"), _bool(t.get("repaired")), _bool(t.get("fallback")),
              t.get("guard"))
             for i, t in enumerate(record["turns"])])
        return negotiation_id

    @_translated("reading negotiations")
    async def negotiations(self,
                           tournament_ids: Sequence[int] | None = None) -> list[NegotiationRow]:
        """Stored negotiations (of the given tournaments, or all), in tournament and run order."""
        sql = ("SELECT n.id, t.name AS tournament, n.buyer, n.seller, n.scenario_id, n.repetition,"
               " n.scenario, n.first_mover, n.max_turns, n.outcome, n.deal_price, n.error,"
               " n.started_at, n.seconds, n.metrics, n.extra"
               " FROM negotiations AS n JOIN tournaments AS t ON t.id = n.tournament_id")
        params: list[Any] = []
        if tournament_ids is not None:
            sql += f" WHERE n.tournament_id IN ({','.join('?' * len(tournament_ids))})"
            params = list(tournament_ids)
        rows = await self._fetchall(sql + " ORDER BY n.tournament_id, n.id", params)
        return [NegotiationRow(
            id=r["id"], tournament=r["tournament"], buyer=r["buyer"], seller=r["seller"],
            scenario_id=r["scenario_id"], repetition=r["repetition"],
            scenario=json.loads(r["scenario"]), first_mover=r["first_mover"],
            max_turns=r["max_turns"], outcome=r["outcome"], deal_price=r["deal_price"],
            error=r["error"], started_at=r["started_at"], seconds=r["seconds"],
            metrics=json.loads(r["metrics"]), extra=json.loads(r["extra"]))
            for r in rows]

    @_translated("reading turns")
    async def turns(self, tournament_ids: Sequence[int] | None = None) -> dict[int, list[TurnRow]]:
        """Turns by negotiation id, in order (of the given tournaments, or all)."""
        sql = ("SELECT tu.* FROM turns AS tu JOIN negotiations AS n ON n.id = tu.negotiation_id")
        params: list[Any] = []
        if tournament_ids is not None:
            sql += f" WHERE n.tournament_id IN ({','.join('?' * len(tournament_ids))})"
            params = list(tournament_ids)
        out: dict[int, list[TurnRow]] = {}
        for r in await self._fetchall(sql + " ORDER BY tu.negotiation_id, tu.idx", params):
            out.setdefault(r["negotiation_id"], []).append(TurnRow(
                negotiation_id=r["negotiation_id"], idx=r["idx"], role=r["role"], act=r["act"],
                label=r["label"], price=r["price"], utterance=r["utterance"],
                thought=r["thought"], seconds=r["seconds"], prompt_tokens=r["prompt_tokens"],
                prompt_tokens_evaluated=r["prompt_tokens_evaluated"],
                completion_tokens=r["completion_tokens"], repaired=bool(r["repaired"]),
                fallback=bool(r["fallback"]), guard=r["guard"]))
        return out

    @_translated("deleting negotiations")
    async def delete_errors(self, tournament_id: int) -> int:
        """Delete a tournament's negotiations that ended in an error (to run them again)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM negotiations WHERE tournament_id = ? AND outcome = 'error'",
                (tournament_id,))
            count = cursor.rowcount
            await cursor.close()
        if count:
            await self._reopen_tournament(tournament_id)
        return count

    async def _reopen_tournament(self, tournament_id: int) -> None:
        async with self._transaction() as conn:
            await conn.execute("UPDATE tournaments SET finished_at = NULL WHERE id = ?",
                               (tournament_id,))

    # ----------------------------------------------------------------- players and games

    @_translated("storing a player")
    async def upsert_player(self, discord_id: int, name: str) -> None:
        stamp = now()
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO players (discord_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (discord_id) DO UPDATE SET name = excluded.name,"
                " updated_at = excluded.updated_at", (discord_id, name, stamp, stamp))

    @_translated("creating a game")
    async def create_game(self, *, player_id: int, player_name: str, channel_id: int,
                          scenario: Mapping[str, Any], agent: str, human_role: str,
                          state: Mapping[str, Any], guild_id: int | None = None,
                          thread_id: int | None = None) -> int:
        """Record a new active game (and its player); returns the game id.

        Raises StoreError when the thread (or, without a thread, the channel) already has an
        active game.
        """
        stamp = now()
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO players (discord_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (discord_id) DO UPDATE SET name = excluded.name,"
                " updated_at = excluded.updated_at", (player_id, player_name, stamp, stamp))
            try:
                cursor = await conn.execute(
                    "INSERT INTO games (guild_id, channel_id, thread_id, player_id, scenario_id,"
                    " scenario, agent, human_role, state, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (guild_id, channel_id, thread_id, player_id, str(scenario["id"]),
                     _json(scenario), agent, human_role, _json(state), stamp, stamp))
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    where = (f"thread {thread_id}" if thread_id is not None
                             else f"channel {channel_id}")
                    raise StoreError(f"{where} already has a game in progress; finish it first"
                                     ) from None
                raise
            game_id = cursor.lastrowid
            await cursor.close()
        return game_id

    @_translated("updating a game")
    async def update_game(self, game_id: int, *, state: Mapping[str, Any]) -> None:
        """Save an active game's state (after each exchange, so a restart can resume it)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE games SET state = ?, updated_at = ? WHERE id = ? AND status = 'active'",
                (_json(state), now(), game_id))
            changed = cursor.rowcount
            await cursor.close()
        if changed != 1:
            raise StoreError(f"game {game_id} is not an active game")

    @_translated("finishing a game")
    async def finish_game(self, game_id: int, *, state: Mapping[str, Any], outcome: str,
                          deal_price: float | None, metrics: Mapping[str, Any]) -> None:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE games SET status = 'finished', state = ?, outcome = ?, deal_price = ?,"
                " metrics = ?, updated_at = ? WHERE id = ? AND status = 'active'",
                (_json(state), outcome, deal_price, _json(metrics), now(), game_id))
            changed = cursor.rowcount
            await cursor.close()
        if changed != 1:
            raise StoreError(f"game {game_id} is not an active game")

    @staticmethod
    def _game(r: sqlite3.Row) -> GameRow:
        return GameRow(
            id=r["id"], guild_id=r["guild_id"], channel_id=r["channel_id"],
            thread_id=r["thread_id"], player_id=r["player_id"], scenario_id=r["scenario_id"],
            scenario=json.loads(r["scenario"]), agent=r["agent"], human_role=r["human_role"],
            status=r["status"], state=json.loads(r["state"]), outcome=r["outcome"],
            deal_price=r["deal_price"],
            metrics=None if r["metrics"] is None else json.loads(r["metrics"]),
            created_at=r["created_at"], updated_at=r["updated_at"])

    @_translated("reading games")
    async def game(self, game_id: int) -> GameRow | None:
        row = await self._fetchone("SELECT * FROM games WHERE id = ?", (game_id,))
        return None if row is None else self._game(row)

    @_translated("reading games")
    async def active_game(self, *, thread_id: int | None = None,
                          channel_id: int | None = None) -> GameRow | None:
        """The active game in a thread (or, for games without a thread, in a channel)."""
        if thread_id is not None:
            row = await self._fetchone(
                "SELECT * FROM games WHERE thread_id = ? AND status = 'active'", (thread_id,))
        elif channel_id is not None:
            row = await self._fetchone(
                "SELECT * FROM games WHERE channel_id = ? AND thread_id IS NULL"
                " AND status = 'active'", (channel_id,))
        else:
            raise ValueError("pass thread_id or channel_id")
        return None if row is None else self._game(row)

    @_translated("reading games")
    async def active_games(self) -> list[GameRow]:
        """Every game still running, oldest first (the bot resumes them after a restart)."""
        rows = await self._fetchall("SELECT * FROM games WHERE status = 'active' ORDER BY id")
        return [self._game(r) for r in rows]

    @_translated("reading games")
    async def player_games(self, player_id: int, *, limit: int = 20) -> list[GameRow]:
        rows = await self._fetchall(
            "SELECT * FROM games WHERE player_id = ? ORDER BY id DESC LIMIT ?", (player_id, limit))
        return [self._game(r) for r in rows]

    # ----------------------------------------------------------------- server settings

    @_translated("reading server settings")
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """A server's settings; all None (use the config defaults) when it never set any."""
        r = await self._fetchone("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        if r is None:
            return GuildSettings(guild_id=guild_id, settings={})
        return GuildSettings(
            guild_id=guild_id, default_agent=r["default_agent"], scenario_set=r["scenario_set"],
            max_turns=r["max_turns"], game_channel=r["game_channel"],
            settings=json.loads(r["settings"]), updated_at=r["updated_at"])

    _GUILD_COLUMNS = ("default_agent", "scenario_set", "max_turns", "game_channel", "settings")

    @_translated("saving server settings")
    async def set_guild_settings(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Change some of a server's settings (a value of None restores the config default)."""
        unknown = set(changes) - set(self._GUILD_COLUMNS)
        if unknown:
            raise ValueError(f"unknown server setting(s): {', '.join(sorted(unknown))}")
        if "settings" in changes:
            changes["settings"] = _json(changes["settings"] or {})
        columns = list(changes)
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?)"
                " ON CONFLICT (guild_id) DO NOTHING", (guild_id, now()))
            if columns:
                # Column names come from the fixed tuple above, never from the caller's text.
                assignments = ", ".join(f"{c} = ?" for c in columns)
                await conn.execute(
                    f"UPDATE guild_settings SET {assignments}, updated_at = ? WHERE guild_id = ?",
                    [changes[c] for c in columns] + [now(), guild_id])
        return await self.guild_settings(guild_id)

    # ----------------------------------------------------------------- Discord bot (migration 2)
    #
    # Used by bot/app.py and bot/cogs/: one running game per person per server, leaderboards
    # over finished games, the daily challenge, and which server started which tournament.

    @_translated("reading games")
    async def active_game_of(self, player_id: int, guild_id: int | None) -> GameRow | None:
        """The person's running game in a server (``guild_id`` None: in direct messages)."""
        row = await self._fetchone(
            "SELECT * FROM games WHERE player_id = ? AND guild_id IS ? AND status = 'active'"
            " ORDER BY id LIMIT 1", (player_id, guild_id))
        return None if row is None else self._game(row)

    @_translated("reading games")
    async def finished_games(self, *, guild_id: int | None = None, player_id: int | None = None,
                             daily: str | None = None) -> list[GameRow]:
        """Finished games, oldest first: of one server (None: every server and DM), of one
        person, of one day's daily challenge; filters combine."""
        sql = "SELECT * FROM games WHERE status = 'finished'"
        params: list[Any] = []
        for column, value in (("guild_id", guild_id), ("player_id", player_id),
                              ("daily", daily)):
            if value is not None:
                sql += f" AND {column} = ?"  # column names are the fixed literals above
                params.append(value)
        rows = await self._fetchall(sql + " ORDER BY id", params)
        return [self._game(r) for r in rows]

    @_translated("reading games")
    async def game_daily(self, game_id: int) -> str | None:
        """The day of the daily challenge game ``game_id`` belongs to, or None."""
        row = await self._fetchone("SELECT daily FROM games WHERE id = ?", (game_id,))
        return None if row is None else row[0]

    @_translated("reading players")
    async def player_names(self, player_ids: Iterable[int]) -> dict[int, str]:
        """Discord id -> the display name stored with the person's latest game."""
        ids = sorted(set(player_ids))
        names: dict[int, str] = {}
        # In chunks: SQLite binds at most 32,766 variables per statement (999 before 3.32).
        for start in range(0, len(ids), _VARIABLES_PER_QUERY):
            chunk = ids[start:start + _VARIABLES_PER_QUERY]
            rows = await self._fetchall(
                f"SELECT discord_id, name FROM players WHERE discord_id IN "
                f"({','.join('?' * len(chunk))})", chunk)
            names.update((r[0], r[1]) for r in rows)
        return names

    @_translated("marking a daily game")
    async def mark_daily(self, game_id: int, day: str) -> None:
        """Make game ``game_id`` its player's attempt at the server's daily challenge of ``day``.

        Raises StoreError when the person already has an attempt that day.
        """
        async with self._transaction() as conn:
            try:
                await conn.execute("UPDATE games SET daily = ? WHERE id = ?", (day, game_id))
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise StoreError(f"this person already played the daily challenge of {day}"
                                     ) from None
                raise

    @_translated("reading games")
    async def daily_games(self, guild_id: int, day: str, *,
                          player_id: int | None = None) -> list[GameRow]:
        """Every attempt (running or finished) at a server's daily challenge of ``day``."""
        sql = "SELECT * FROM games WHERE guild_id = ? AND daily = ?"
        params: list[Any] = [guild_id, day]
        if player_id is not None:
            sql += " AND player_id = ?"
            params.append(player_id)
        rows = await self._fetchall(sql + " ORDER BY id", params)
        return [self._game(r) for r in rows]

    @staticmethod
    def _daily(r: sqlite3.Row) -> "DailyChallengeRow":
        return DailyChallengeRow(
            guild_id=r["guild_id"], day=r["day"], scenario=json.loads(r["scenario"]),
            agent=r["agent"], human_role=r["human_role"], seed=r["seed"],
            channel_id=r["channel_id"], created_at=r["created_at"],
            announced_at=r["announced_at"])

    @_translated("reading the daily challenge")
    async def daily_challenge(self, guild_id: int, day: str) -> "DailyChallengeRow | None":
        row = await self._fetchone(
            "SELECT * FROM daily_challenges WHERE guild_id = ? AND day = ?", (guild_id, day))
        return None if row is None else self._daily(row)

    @_translated("saving the daily challenge")
    async def ensure_daily_challenge(self, guild_id: int, day: str, *,
                                     scenario: Mapping[str, Any], agent: str, human_role: str,
                                     seed: int, channel_id: int | None) -> "DailyChallengeRow":
        """The server's challenge of ``day``: the stored one, or this one stored now (the first
        caller of the day fixes it for everyone)."""
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO daily_challenges (guild_id, day, scenario, agent, human_role, seed,"
                " channel_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, day) DO NOTHING",
                (guild_id, day, _json(scenario), agent, human_role, seed, channel_id, now()))
        challenge = await self.daily_challenge(guild_id, day)
        assert challenge is not None
        return challenge

    @_translated("reading daily challenges")
    async def unannounced_dailies(self, before_day: str) -> list["DailyChallengeRow"]:
        """Challenges of days before ``before_day`` whose ranking was not posted yet."""
        rows = await self._fetchall(
            "SELECT * FROM daily_challenges WHERE day < ? AND announced_at IS NULL"
            " ORDER BY day, guild_id", (before_day,))
        return [self._daily(r) for r in rows]

    @_translated("saving the daily challenge")
    async def mark_daily_announced(self, guild_id: int, day: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE daily_challenges SET announced_at = ? WHERE guild_id = ? AND day = ?",
                (now(), guild_id, day))

    @_translated("linking a tournament to a server")
    async def link_tournament(self, guild_id: int, tournament_id: int, *,
                              channel_id: int | None = None,
                              started_by: int | None = None) -> None:
        """Record that server ``guild_id`` ran tournament ``tournament_id`` (idempotent)."""
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO guild_tournaments (guild_id, tournament_id, channel_id, started_by,"
                " created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, tournament_id, channel_id, started_by, now()))

    @_translated("reading tournaments")
    async def guild_tournament_ids(self, guild_id: int) -> list[int]:
        rows = await self._fetchall(
            "SELECT tournament_id FROM guild_tournaments WHERE guild_id = ? ORDER BY tournament_id",
            (guild_id,))
        return [r[0] for r in rows]


@dataclass(frozen=True)
class DailyChallengeRow:
    """A server's daily challenge (table daily_challenges, migration 2)."""

    guild_id: int
    day: str
    scenario: dict[str, Any]
    agent: str
    human_role: str
    seed: int
    channel_id: int | None
    created_at: str
    announced_at: str | None
