"""Several processes on one database file: opening a fresh file at once, and large queries.

Each test uses a real SQLite file in tmp_path; the "other process" is a second connection
(plain sqlite3, as another haggle or a person's sqlite3 shell would hold it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap

from bot.store import SCHEMA_VERSION, Store
from bot.store.db import MIGRATIONS
from tests.conftest import REPO


async def test_a_second_opener_waits_for_a_migration_in_flight_and_does_not_redo_it(tmp_path):
    # The first process is migrating the fresh file (its transaction is open, not committed)
    # when the second opens it: the second must wait, then see the migrated schema.
    path = tmp_path / "h.db"
    first = sqlite3.connect(path, isolation_level=None)
    first.execute("PRAGMA journal_mode = WAL")  # what Store.open does before migrating
    first.execute("BEGIN IMMEDIATE")
    for migration in MIGRATIONS:
        for statement in _statements(migration.sql):
            first.execute(statement)
    first.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    opening = asyncio.create_task(Store.open(path, busy_timeout=10))
    await asyncio.sleep(0.3)  # the second opener is now blocked on the first one's lock
    assert not opening.done()
    first.execute("COMMIT")
    first.close()

    store = await asyncio.wait_for(opening, 10)
    async with store:
        assert await store.schema_version() == SCHEMA_VERSION
        assert (await store.tournaments()) == []


def test_processes_opening_one_fresh_database_at_once_all_succeed(tmp_path):
    path = tmp_path / "h.db"
    script = textwrap.dedent(f"""
        import asyncio, sys
        from bot.store import Store
        async def main():
            store = await Store.open({str(path)!r}, busy_timeout=30)
            await store.close()
        asyncio.run(main())
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [(p.wait(60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in results] == [0, 0, 0, 0], [err for _, err in results]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_player_names_past_sqlites_variable_limit(tmp_path):
    # SQLite binds at most 32,766 variables per statement (999 before 3.32; distributions
    # raise it at build time): a server with more players than the limit must still get its
    # names. The limit is set to the oldest default here, whatever this build allows.
    path = tmp_path / "h.db"
    async with await Store.open(path) as store:
        raw = store._conn
        await raw._execute(lambda: raw._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
        ids = list(range(1, 40_001))
        with sqlite3.connect(path) as conn:
            conn.executemany("INSERT INTO players (discord_id, name, created_at, updated_at)"
                             " VALUES (?, ?, '', '')", [(i, f"p{i}") for i in ids])
        names = await store.player_names(ids + [99_999_999])
    assert len(names) == 40_000 and names[1] == "p1" and names[40_000] == "p40000"


def _statements(sql: str) -> list[str]:
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf)
            buf = ""
    return out
