"""The SQLite store: schema migrations, atomic writes, and clear errors on bad databases.

Every test uses a real SQLite file in tmp_path. The failure tests check three things: a
StoreError that says what happened, nothing stored before is lost, and PRAGMA integrity_check
still says ok.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.errors import StoreError
from bot.negotiation.agents import RuleAgent
from bot.negotiation.runner import run_negotiation
from bot.store import SCHEMA_VERSION, Store
from bot.store import db as store_db


@pytest.fixture
async def record(scenario):
    rec = await run_negotiation(scenario, RuleAgent("rb", seed=1), RuleAgent("rs", seed=2))
    return rec.to_dict()


async def _tournament(store: Store, name: str = "t") -> int:
    return (await store.create_tournament(name, config={"settings": {}}, planned=10)).id


def _count(path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _integrity(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


async def test_open_creates_a_migrated_wal_database(tmp_path):
    path = tmp_path / "sub" / "h.db"
    async with await Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
        assert await store.integrity_check() == "ok"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tournaments", "negotiations", "turns", "players", "games", "guild_settings"} <= tables
    async with await Store.open(path) as store:  # reopening applies nothing twice
        assert await store.schema_version() == SCHEMA_VERSION


async def test_missing_database_is_not_created_when_create_is_false(tmp_path):
    with pytest.raises(StoreError, match="no database at"):
        await Store.open(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


async def test_negotiation_and_turns_round_trip(tmp_path, record):
    async with await Store.open(tmp_path / "h.db") as store:
        tid = await _tournament(store)
        nid = await store.save_negotiation(tid, record, repetition=2, extra={"note": 1})
        assert nid is not None
        (row,) = await store.negotiations([tid])
        turns = (await store.turns([tid]))[nid]
    assert (row.buyer, row.seller, row.repetition, row.pairing) == ("rb", "rs", 2, "rb vs rs")
    assert row.scenario == record["scenario"] and row.outcome == record["outcome"]
    assert row.deal_price == record["deal_price"] and row.metrics == record["metrics"]
    assert row.extra == {"note": 1} and row.tournament == "t"
    assert [(t.role, t.act, t.price, t.utterance) for t in turns] == [
        (t["role"], t["act"], t["price"], t["utterance"]) for t in record["turns"]]
    assert [t.idx for t in turns] == list(range(len(record["turns"])))


async def test_the_same_negotiation_is_never_stored_twice(tmp_path, record):
    path = tmp_path / "h.db"
    async with await Store.open(path) as store:
        tid = await _tournament(store)
        assert await store.save_negotiation(tid, record) is not None
        assert await store.save_negotiation(tid, record) is None
        assert await store.save_negotiations(tid, [(record, 0, None), (record, 1, None)]) == 1
        keys = await store.done_keys(tid)
    assert keys == {("rb", "rs", "bike", 0), ("rb", "rs", "bike", 1)}
    assert _count(path, "negotiations") == 2
    assert _count(path, "turns") == 2 * len(record["turns"])


async def test_a_failed_write_stores_nothing_of_that_negotiation(tmp_path, record):
    path = tmp_path / "h.db"
    broken = {**record, "turns": [*record["turns"][:2], {**record["turns"][2], "role": "alien"}]}
    async with await Store.open(path) as store:
        tid = await _tournament(store)
        await store.save_negotiation(tid, record, repetition=0)
        with pytest.raises(StoreError, match="storing a negotiation"):
            await store.save_negotiation(tid, broken, repetition=1)
        assert await store.done_keys(tid) == {("rb", "rs", "bike", 0)}
    assert _count(path, "turns") == len(record["turns"])  # not even the two valid turns
    assert _integrity(path) == "ok"


async def test_duplicate_tournament_name_is_an_error(tmp_path):
    async with await Store.open(tmp_path / "h.db") as store:
        await _tournament(store, "x")
        with pytest.raises(StoreError, match="already exists"):
            await _tournament(store, "x")


async def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a haggle database: it is not SQLite or it is"):
        await Store.open(path)
    assert path.read_bytes() == content
    assert not (tmp_path / "notes.db-wal").exists()


async def test_a_corrupt_database_gives_a_store_error_and_is_not_written(tmp_path, record):
    path = tmp_path / "h.db"
    async with await Store.open(path) as store:
        tid = await _tournament(store)
        for rep in range(30):  # enough rows to span several pages
            await store.save_negotiation(tid, record, repetition=rep)
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='turns'").fetchone()[0]
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    data[start:start + page_size] = b"\xa5" * page_size  # wipe the turns table's root page
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        async with await Store.open(path) as store:
            await store.turns()
    assert path.read_bytes() == bytes(data)


async def test_a_database_of_another_program_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(StoreError, match="another program"):
        await Store.open(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["photos"]


async def test_a_database_newer_than_the_code_is_refused_untouched(tmp_path, record):
    path = tmp_path / "h.db"
    async with await Store.open(path) as store:
        await store.save_negotiation(await _tournament(store), record)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        await Store.open(path)
    assert _count(path, "negotiations") == 1


async def test_pending_migrations_apply_in_order_and_a_failing_one_changes_nothing(
        tmp_path, monkeypatch, record):
    path = tmp_path / "h.db"
    async with await Store.open(path) as store:
        await store.save_negotiation(await _tournament(store), record)
    v2 = store_db.Migration(SCHEMA_VERSION + 1, "9999_test.sql",
                            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);\n"
                            "INSERT INTO notes (text) SELECT name FROM tournaments;")
    broken = store_db.Migration(SCHEMA_VERSION + 1, "9999_broken.sql",
                                "CREATE TABLE notes (id INTEGER);\nINSERT INTO nowhere VALUES (1);")

    monkeypatch.setattr(store_db, "MIGRATIONS", [*store_db.MIGRATIONS, broken])
    monkeypatch.setattr(store_db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="nowhere"):
        await Store.open(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert "notes" not in tables

    monkeypatch.setattr(store_db, "MIGRATIONS", [*store_db.MIGRATIONS[:-1], v2])
    async with await Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION + 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT text FROM notes").fetchall() == [("t",)]
    assert _count(path, "negotiations") == 1


def test_shipped_migrations_are_numbered_without_gaps():
    migrations = store_db.load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.name.endswith(".sql") and m.sql.strip() for m in migrations)
    assert SCHEMA_VERSION == migrations[-1].version


async def test_a_locked_database_gives_a_clear_error_and_loses_nothing(tmp_path, record):
    path = tmp_path / "h.db"
    store = await Store.open(path, busy_timeout=0.2)
    try:
        tid = await _tournament(store)
        await store.save_negotiation(tid, record, repetition=0)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(StoreError, match="locked by another process"):
                await store.save_negotiation(tid, record, repetition=1)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await store.save_negotiation(tid, record, repetition=1) is not None
        assert len(await store.done_keys(tid)) == 2
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()


async def test_disk_full_rolls_back_and_keeps_what_was_stored(tmp_path, record):
    path = tmp_path / "h.db"
    store = await Store.open(path)
    try:
        tid = await _tournament(store)
        await store.save_negotiation(tid, record, repetition=0)
        # SQLite's own cap on the file size: writes beyond it fail with SQLITE_FULL, exactly
        # as they do when the disk is full.
        pages = (await store._fetchone("PRAGMA page_count"))[0]
        await store._fetchone(f"PRAGMA max_page_count = {pages}")
        huge = {**record, "turns": [{**t, "utterance": "x" * 20_000} for t in record["turns"]]}
        with pytest.raises(StoreError, match="disk full"):
            await store.save_negotiation(tid, huge, repetition=1)
        assert await store.done_keys(tid) == {("rb", "rs", "bike", 0)}
        assert await store.integrity_check() == "ok"
        await store._fetchone("PRAGMA max_page_count = 1073741823")
        assert await store.save_negotiation(tid, huge, repetition=1) is not None
    finally:
        await store.close()
    assert _integrity(path) == "ok" and _count(path, "negotiations") == 2


async def test_concurrent_writers_on_one_store_do_not_interleave(tmp_path, record):
    path = tmp_path / "h.db"
    async with await Store.open(path) as store:
        tid = await _tournament(store)
        results = await asyncio.gather(*(store.save_negotiation(tid, record, repetition=r)
                                         for r in range(20)))
    assert all(r is not None for r in results)
    with sqlite3.connect(path) as conn:
        per = conn.execute("SELECT count(*) FROM turns GROUP BY negotiation_id").fetchall()
    assert per == [(len(record["turns"]),)] * 20


async def test_players_games_and_server_settings(tmp_path, scenario):
    async with await Store.open(tmp_path / "h.db") as store:
        game = await store.create_game(player_id=123456789012345678, player_name="ana",
                                       guild_id=42, channel_id=7, thread_id=70,
                                       scenario=scenario.to_dict(), agent="seller",
                                       human_role="buyer", state={"turns": []})
        with pytest.raises(StoreError, match="thread 70 already has a game"):
            await store.create_game(player_id=1, player_name="bo", guild_id=42, channel_id=7,
                                    thread_id=70, scenario=scenario.to_dict(), agent="seller",
                                    human_role="buyer", state={})
        await store.update_game(game, state={"turns": [{"act": "intro"}]})
        active = await store.active_game(thread_id=70)
        assert active.id == game and active.state == {"turns": [{"act": "intro"}]}
        assert [g.id for g in await store.active_games()] == [game]

        await store.finish_game(game, state={"turns": []}, outcome="deal", deal_price=170.0,
                                metrics={"agreed": True})
        assert await store.active_games() == []
        done = await store.game(game)
        assert (done.status, done.outcome, done.deal_price, done.metrics) == (
            "finished", "deal", 170.0, {"agreed": True})
        with pytest.raises(StoreError, match="not an active game"):
            await store.update_game(game, state={})
        assert [g.id for g in await store.player_games(123456789012345678)] == [game]
        # the thread is free again
        await store.create_game(player_id=1, player_name="bo", guild_id=42, channel_id=7,
                                thread_id=70, scenario=scenario.to_dict(), agent="seller",
                                human_role="seller", state={})

        assert (await store.guild_settings(42)).default_agent is None
        settings = await store.set_guild_settings(42, default_agent="rule", max_turns=10,
                                                  settings={"lang": "en"})
        assert (settings.default_agent, settings.max_turns, settings.settings) == (
            "rule", 10, {"lang": "en"})
        settings = await store.set_guild_settings(42, default_agent=None)
        assert settings.default_agent is None and settings.max_turns == 10
        with pytest.raises(ValueError, match="unknown server setting"):
            await store.set_guild_settings(42, colour="red")


async def test_cancelling_a_write_that_waits_for_the_lock_leaves_no_open_transaction(
        tmp_path, record):
    """A task cancelled while its BEGIN waits on a locked database (Ctrl-C during a
    tournament, say) must not leave the connection inside a transaction: the BEGIN still runs
    on the connection's thread once the lock frees, and must be rolled back."""
    path = tmp_path / "h.db"
    store = await Store.open(path, busy_timeout=5)
    try:
        tid = await _tournament(store)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(store.save_negotiation(tid, record, repetition=0))
        await asyncio.sleep(0.3)  # the task's BEGIN is now waiting for the lock
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other.execute("ROLLBACK")
        other.close()
        assert await store.save_negotiation(tid, record, repetition=1) is not None
        assert await store.done_keys(tid) == {("rb", "rs", "bike", 1)}
    finally:
        await store.close()
    assert _count(path, "negotiations") == 1
