"""The store's Discord queries: players, games, server settings, the daily challenge and which
server ran which tournament (bot/app.py, bot/cogs/). Mixed into ``bot.store.db.Store``, whose
connection and transactions they use."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from bot.errors import StoreError
from bot.store.errors import translated
from bot.store.rows import DailyChallengeRow, GameRow, GuildSettings, PlayerStanding, now, to_json

_VARIABLES_PER_QUERY = 900  # below SQLite's oldest limit of 999 bound variables per statement


class GameQueries:
    """Players, games, server settings, daily challenges, servers' tournaments."""

    # ----------------------------------------------------------------- players and games

    @translated("creating a game")
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
                     to_json(scenario), agent, human_role, to_json(state), stamp, stamp))
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

    @translated("updating a game")
    async def update_game(self, game_id: int, *, state: Mapping[str, Any]) -> None:
        """Save an active game's state (after each exchange, so a restart can resume it)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE games SET state = ?, updated_at = ? WHERE id = ? AND status = 'active'",
                (to_json(state), now(), game_id))
            changed = cursor.rowcount
            await cursor.close()
        if changed != 1:
            raise StoreError(f"game {game_id} is not an active game")

    @translated("finishing a game")
    async def finish_game(self, game_id: int, *, state: Mapping[str, Any], outcome: str,
                          deal_price: float | None, metrics: Mapping[str, Any]) -> None:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE games SET status = 'finished', state = ?, outcome = ?, deal_price = ?,"
                " metrics = ?, updated_at = ? WHERE id = ? AND status = 'active'",
                (to_json(state), outcome, deal_price, to_json(metrics), now(), game_id))
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

    @translated("reading games")
    async def game(self, game_id: int) -> GameRow | None:
        row = await self._fetchone("SELECT * FROM games WHERE id = ?", (game_id,))
        return None if row is None else self._game(row)

    @translated("reading games")
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

    @translated("reading games")
    async def active_games(self) -> list[GameRow]:
        """Every game still running, oldest first (the bot resumes them after a restart)."""
        rows = await self._fetchall("SELECT * FROM games WHERE status = 'active' ORDER BY id")
        return [self._game(r) for r in rows]

    @translated("marking a game's messages posted")
    async def mark_posted(self, game_id: int, *, turns: int, card: bool) -> None:
        """Record that the game's first ``turns`` turns (and its result card, if ``card``) are
        posted in Discord: what a restart must still post is what lies past these marks. The
        marks only grow (a late write never takes back a newer one)."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE games SET state = json_set(state,"
                " '$.bot.posted', max(?, coalesce(json_extract(state, '$.bot.posted'), 0)),"
                " '$.bot.card_posted', json(CASE WHEN ? OR coalesce(json_extract(state,"
                " '$.bot.card_posted'), 0) THEN 'true' ELSE 'false' END)) WHERE id = ?",
                (turns, int(card), game_id))

    @translated("reading games")
    async def unposted_games(self) -> list[GameRow]:
        """Games with a saved turn or result card that never reached Discord (the bot stopped
        between the save and the post), oldest first. Games saved before the marks existed
        have none and are never listed."""
        rows = await self._fetchall(
            "SELECT * FROM games WHERE json_extract(state, '$.bot.posted') IS NOT NULL AND ("
            " json_array_length(state, '$.turns') > json_extract(state, '$.bot.posted')"
            " OR (status = 'finished' AND json_extract(state, '$.bot.card_posted') = 0))"
            " ORDER BY id")
        return [self._game(r) for r in rows]

    @translated("reading games")
    async def player_games(self, player_id: int, *, limit: int = 20) -> list[GameRow]:
        rows = await self._fetchall(
            "SELECT * FROM games WHERE player_id = ? ORDER BY id DESC LIMIT ?", (player_id, limit))
        return [self._game(r) for r in rows]

    # ----------------------------------------------------------------- server settings

    @translated("reading server settings")
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

    @translated("saving server settings")
    async def set_guild_settings(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Change some of a server's settings (a value of None restores the config default)."""
        unknown = set(changes) - set(self._GUILD_COLUMNS)
        if unknown:
            raise ValueError(f"unknown server setting(s): {', '.join(sorted(unknown))}")
        if "settings" in changes:
            changes["settings"] = to_json(changes["settings"] or {})
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

    @translated("reading games")
    async def active_game_of(self, player_id: int, guild_id: int | None) -> GameRow | None:
        """The person's running game in a server (``guild_id`` None: in direct messages)."""
        row = await self._fetchone(
            "SELECT * FROM games WHERE player_id = ? AND guild_id IS ? AND status = 'active'"
            " ORDER BY id LIMIT 1", (player_id, guild_id))
        return None if row is None else self._game(row)

    @translated("reading games")
    async def finished_games(self, *, guild_id: int | None = None, player_id: int | None = None,
                             daily: str | None = None, latest: int | None = None) -> list[GameRow]:
        """Finished games, oldest first (``latest``: only the newest N, newest first): of one
        server (None: every server and DM), of one person, of one day's daily challenge;
        filters combine."""
        sql = "SELECT * FROM games WHERE status = 'finished'"
        params: list[Any] = []
        for column, value in (("guild_id", guild_id), ("player_id", player_id),
                              ("daily", daily)):
            if value is not None:
                sql += f" AND {column} = ?"  # column names are the fixed literals above
                params.append(value)
        if latest is None:
            sql += " ORDER BY id"
        else:
            sql += " ORDER BY id DESC LIMIT ?"
            params.append(latest)
        rows = await self._fetchall(sql, params)
        return [self._game(r) for r in rows]

    @translated("reading the leaderboard")
    async def player_standings(self, *, guild_id: int | None = None,
                               player_id: int | None = None,
                               limit: int | None = None) -> list[PlayerStanding]:
        """People ranked by their mean surplus share over their deals, then by deals, computed
        by SQLite (no game is loaded or parsed here): of one server (None: everywhere), of one
        person. A game counts once the person made a move in it; games that ended in an error
        count for nobody."""
        where, params = ["g.status = 'finished'", "g.outcome IS NOT 'error'"], []
        for column, value in (("g.guild_id", guild_id), ("g.player_id", player_id)):
            if value is not None:
                where.append(f"{column} = ?")  # column names are the fixed literals above
                params.append(value)
        sql = f"""
            WITH scored AS (
                SELECT g.player_id,
                       CASE WHEN g.deal_price IS NOT NULL THEN json_extract(
                           g.metrics, '$.' || g.human_role || '_surplus_share') END AS share
                FROM games AS g
                WHERE {' AND '.join(where)} AND EXISTS (
                    SELECT 1 FROM json_each(g.state, '$.turns') AS t
                    WHERE json_extract(t.value, '$.role') = g.human_role))
            SELECT s.player_id, coalesce(p.name, CAST(s.player_id AS TEXT)) AS name,
                   count(*) AS games, count(s.share) AS deals,
                   coalesce(sum(s.share), 0.0) AS share_total, max(s.share) AS best
            FROM scored AS s LEFT JOIN players AS p ON p.discord_id = s.player_id
            GROUP BY s.player_id
            ORDER BY count(s.share) = 0, coalesce(sum(s.share) / count(s.share), 0) DESC,
                     count(s.share) DESC, lower(name)"""
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self._fetchall(sql, params)
        return [PlayerStanding(r["player_id"], r["name"], r["games"], r["deals"],
                               r["share_total"], r["best"]) for r in rows]

    @translated("reading players")
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

    @translated("marking a daily game")
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

    @translated("reading games")
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
    def _daily(r: sqlite3.Row) -> DailyChallengeRow:
        return DailyChallengeRow(
            guild_id=r["guild_id"], day=r["day"], scenario=json.loads(r["scenario"]),
            agent=r["agent"], human_role=r["human_role"], seed=r["seed"],
            channel_id=r["channel_id"], created_at=r["created_at"],
            announced_at=r["announced_at"])

    @translated("reading the daily challenge")
    async def daily_challenge(self, guild_id: int, day: str) -> DailyChallengeRow | None:
        row = await self._fetchone(
            "SELECT * FROM daily_challenges WHERE guild_id = ? AND day = ?", (guild_id, day))
        return None if row is None else self._daily(row)

    @translated("saving the daily challenge")
    async def ensure_daily_challenge(self, guild_id: int, day: str, *,
                                     scenario: Mapping[str, Any], agent: str, human_role: str,
                                     seed: int, channel_id: int | None) -> DailyChallengeRow:
        """The server's challenge of ``day``: the stored one, or this one stored now (the first
        caller of the day fixes it for everyone)."""
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO daily_challenges (guild_id, day, scenario, agent, human_role, seed,"
                " channel_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id, day) DO NOTHING",
                (guild_id, day, to_json(scenario), agent, human_role, seed, channel_id, now()))
        challenge = await self.daily_challenge(guild_id, day)
        assert challenge is not None
        return challenge

    @translated("reading daily challenges")
    async def unannounced_dailies(self, before_day: str) -> list[DailyChallengeRow]:
        """Challenges of days before ``before_day`` whose ranking was not posted yet."""
        rows = await self._fetchall(
            "SELECT * FROM daily_challenges WHERE day < ? AND announced_at IS NULL"
            " ORDER BY day, guild_id", (before_day,))
        return [self._daily(r) for r in rows]

    @translated("saving the daily challenge")
    async def mark_daily_announced(self, guild_id: int, day: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE daily_challenges SET announced_at = ? WHERE guild_id = ? AND day = ?",
                (now(), guild_id, day))

    @translated("linking a tournament to a server")
    async def link_tournament(self, guild_id: int, tournament_id: int, *,
                              channel_id: int | None = None,
                              started_by: int | None = None) -> None:
        """Record that server ``guild_id`` ran tournament ``tournament_id`` (idempotent)."""
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO guild_tournaments (guild_id, tournament_id, channel_id, started_by,"
                " created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, tournament_id, channel_id, started_by, now()))

    @translated("reading tournaments")
    async def guild_tournament_ids(self, guild_id: int) -> list[int]:
        rows = await self._fetchall(
            "SELECT tournament_id FROM guild_tournaments WHERE guild_id = ? ORDER BY tournament_id",
            (guild_id,))
        return [r[0] for r in rows]
