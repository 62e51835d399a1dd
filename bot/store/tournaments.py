"""The store's tournament queries: tournaments, their negotiations and turns (bot/tournament.py,
bot/agreemate.py, reports). Mixed into ``bot.store.db.Store``, whose connection and
transactions they use."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

from bot.errors import StoreError
from bot.store.errors import translated
from bot.store.rows import (
    NegotiationRow,
    TournamentRow,
    TurnRow,
    now,
    pairing_key,
    to_flag,
    to_json,
)


class TournamentQueries:
    """Tournaments, negotiations and their turns."""

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

    @translated("reading tournaments")
    async def tournament(self, name: str) -> TournamentRow | None:
        row = await self._fetchone(self._TOURNAMENT_SELECT + " WHERE t.name = ?", (name,))
        return None if row is None else self._tournament(row)

    @translated("reading tournaments")
    async def tournaments(self) -> list[TournamentRow]:
        rows = await self._fetchall(self._TOURNAMENT_SELECT + " ORDER BY t.id")
        return [self._tournament(r) for r in rows]

    @translated("creating a tournament")
    async def create_tournament(self, name: str, *, config: Mapping[str, Any], planned: int,
                                kind: str = "tournament", agents: Mapping[str, Any] | None = None,
                                models: Mapping[str, Any] | None = None, seed: int | None = None,
                                source: str | None = None) -> TournamentRow:
        async with self._transaction() as conn:
            try:
                await conn.execute(
                    "INSERT INTO tournaments (name, kind, config, agents, models, seed, planned,"
                    " source, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, kind, to_json(config), to_json(agents or {}), to_json(models or {}),
                     seed, planned, source, now()))
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise StoreError(f"a tournament named {name!r} already exists in {self.path}"
                                     ) from None
                raise
        created = await self.tournament(name)
        assert created is not None
        return created

    @translated("finishing a tournament")
    async def finish_tournament(self, tournament_id: int) -> None:
        async with self._transaction() as conn:
            await conn.execute("UPDATE tournaments SET finished_at = ? WHERE id = ?",
                               (now(), tournament_id))

    # ----------------------------------------------------------------- negotiations

    @translated("reading negotiations")
    async def done_keys(self, tournament_id: int) -> set[tuple[str, str, str, int]]:
        """(buyer, seller, scenario id, repetition) of every stored negotiation."""
        rows = await self._fetchall(
            "SELECT buyer, seller, scenario_id, repetition FROM negotiations"
            " WHERE tournament_id = ?", (tournament_id,))
        return {(r[0], r[1], r[2], r[3]) for r in rows}

    @translated("storing a negotiation")
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

    @translated("storing negotiations")
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
             repetition, to_json(scenario), record["first_mover"], record["max_turns"],
             record["outcome"], record["deal_price"], record.get("error"),
             record.get("started_at") or None, record.get("seconds"),
             to_json(record.get("metrics", {})), to_json(extra or {})))
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
              t.get("completion_tokens"), to_flag(t.get("repaired")), to_flag(t.get("fallback")),
              t.get("guard"))
             for i, t in enumerate(record["turns"])])
        return negotiation_id

    @translated("reading negotiations")
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

    @translated("reading turns")
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

    @translated("reading turns")
    async def turn_counts(self, tournament_ids: Sequence[int] | None = None
                          ) -> dict[tuple[int, str], tuple[int, int]]:
        """(negotiation id, role) -> (turns, fallback turns), of the given tournaments or all:
        what a report needs to show each agent's share of fallback play, without the turns."""
        sql = ("SELECT tu.negotiation_id, tu.role, count(*) AS turns, sum(tu.fallback) AS fallback"
               " FROM turns AS tu JOIN negotiations AS n ON n.id = tu.negotiation_id")
        params: list[Any] = []
        if tournament_ids is not None:
            sql += f" WHERE n.tournament_id IN ({','.join('?' * len(tournament_ids))})"
            params = list(tournament_ids)
        rows = await self._fetchall(sql + " GROUP BY tu.negotiation_id, tu.role", params)
        return {(r["negotiation_id"], r["role"]): (r["turns"], r["fallback"] or 0) for r in rows}

    @translated("deleting negotiations")
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
