"""What bench/bot_soak.py checks after (and during) the soak: the database against what Discord
shows, every refusal people got, and every message scanned for leaks.

- ``GameAudit``: per game, the bot's moves saved in the database against its move messages in
  the game's thread (a multiset of the escaped words: lost = saved but never posted,
  duplicated = posted more often than saved), result cards of finished games never posted,
  games that owe a move at the end (the bot's move is due, or the game is over but still
  active: the soak then pokes their players, and a game that does not answer is stuck),
  endings as the player's timeout (and those of games that lived through a restart).
- ``Leaks``: every message the bot showed anyone (``observe`` sees each new message and edit,
  private replies included): absolute paths, URLs (the backend's or any other), ids of other
  servers.
- ``refusal_kind``: what a refusal a person got says, by its wording in the bot's code.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ABS_PATH = re.compile(r"(?<![\w.:/])(?:/(?:tmp|work|home|root|usr|var|etc|opt|mnt|srv|proc|"
                      r"private|Users|data)/|[A-Za-z]:\\)")
ANY_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://", re.IGNORECASE)
TABLE_LINE = "\n-# "

REFUSALS = (  # (kind, a phrase of the bot's own wording); first match wins
    ("rate limit (actions_per_minute)", "at most "),
    ("cooldown", "you can use this again in"),
    ("model line full (queue_size)", "model is busy"),
    ("model instance cap (max_model_instances)", "max_model_instances"),
    ("one message at a time", "Still answering your last message"),
    ("message too long (max_message_chars)", "keep it under"),
    ("bot-wide tournament cap (max_running_tournaments)", "max_running_tournaments"),
    ("a tournament already runs in this server", "already running here"),
    ("a tournament is being set up here", "being set up here"),
    ("withdrawn while waiting (bot closing / deal or bye)", "wasn't counted"),
    ("the model failed", "the model failed"),
    ("game already running", "already have a game"),
    ("error on the bot's side (incident)", "Something went wrong"),
    ("games paused", "Games are paused"),
    ("not your game", "isn't your game"),
    ("game over", "is over"),
)


def refusal_kind(text: str) -> str | None:
    for kind, phrase in REFUSALS:
        if phrase in text:
            if kind.startswith("rate limit") and "Slow down" not in text:
                continue
            return kind
    return None


def message_text(message: dict[str, Any]) -> str:
    """Everything a person reads in a message: content, embeds (every text part and link),
    button labels, attachment names."""
    parts = [message.get("content") or ""]
    for e in message.get("embeds") or []:
        parts += [e.get("title") or "", e.get("description") or "", e.get("url") or ""]
        parts += [f"{f.get('name')}: {f.get('value')}" for f in e.get("fields") or []]
        for key in ("footer", "author"):
            if e.get(key):
                parts.append(e[key].get("text") or e[key].get("name") or "")
        for key in ("image", "thumbnail"):
            url = (e.get(key) or {}).get("url") or ""
            if not url.startswith("attachment://"):
                parts.append(url)
    for row in message.get("components") or []:
        for c in row.get("components") or []:
            parts.append(c.get("label") or "")
    parts += [a.get("filename") or "" for a in message.get("attachments") or []]
    return "\n".join(p for p in parts if p)


@dataclass
class Leaks:
    """Every message the bot showed, scanned as it was shown."""

    discord: Any
    secrets: list[str]
    messages: int = 0
    paths: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    other_servers: list[str] = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)
    refusal_examples: dict[str, str] = field(default_factory=dict)
    private: int = 0

    def observe(self, kind: str, message: dict[str, Any]) -> None:
        if int(message["author"]["id"]) != self.discord.bot_user.id:
            return
        self.messages += 1
        text = message_text(message)
        self.private += "_only" in message
        if ABS_PATH.search(text) or any(s and s in text for s in self.secrets):
            self.paths.append(text[:200])
        if ANY_URL.search(text):
            self.urls.append(text[:200])
        channel = self.discord.channels.get(int(message["channel_id"]))
        own = getattr(channel, "guild_id", None)
        for guild_id in self.discord.guilds:
            if guild_id != own and str(guild_id) in text:
                self.other_servers.append(text[:200])
                break
        if kind == "new":
            refusal = refusal_kind(text)
            if refusal is not None:
                self.refusals[refusal] += 1
                self.refusal_examples.setdefault(refusal, text[:160].replace("\n", " "))


@dataclass
class GameAudit:
    games: int = 0
    finished: int = 0
    active: int = 0
    moves_saved: int = 0
    moves_posted: int = 0
    lost: int = 0
    duplicated: int = 0
    cards_unposted: int = 0
    stuck: int = 0
    timeouts: int = 0                # while the players played
    timeouts_after_restart: int = 0  # of those, games that lived through a restart
    timeouts_after_stop: int = 0     # after the players had stopped (they left their games)
    lived_through_restart: int = 0
    owing: list[tuple[int, int, int]] = field(default_factory=list)  # (game, thread, player)
    tournaments: int = 0             # in the database
    tournaments_finished: int = 0
    negotiations: int = 0            # tournament negotiations stored
    negotiation_errors: int = 0
    outcomes: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 8:
            self.examples.append(text)


def audit_games(db_path: str, discord: Any, *, stopped_at: str | None = None) -> GameAudit:
    """``stopped_at`` (ISO time, UTC): when the players stopped; timeouts after it are theirs."""
    from bot.discord_util import safe_text

    audit = GameAudit()
    bot_id = discord.bot_user.id
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute("SELECT id, thread_id, status, outcome, human_role, state, player_id, "
                          "updated_at FROM games").fetchall()
        has = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "tournaments" in has:
            audit.tournaments, audit.tournaments_finished = db.execute(
                "SELECT COUNT(*), COUNT(finished_at) FROM tournaments").fetchone()
            audit.negotiations, audit.negotiation_errors = db.execute(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE outcome = 'error') "
                "FROM negotiations").fetchone()
    for game_id, thread_id, status, outcome, human_role, raw, player_id, updated in rows:
        state = json.loads(raw)
        audit.games += 1
        audit.finished += status == "finished"
        audit.active += status == "active"
        audit.outcomes[outcome or "running"] += 1
        restarts = (state.get("bot") or {}).get("restarts") or []
        audit.lived_through_restart += bool(restarts)
        if outcome == "timeout" and stopped_at is not None and updated > stopped_at:
            audit.timeouts_after_stop += 1
        elif outcome == "timeout":
            audit.timeouts += 1
            audit.timeouts_after_restart += bool(restarts)
        turns = state.get("turns") or []
        saved = Counter(safe_text(t["utterance"]) for t in turns if t["role"] != human_role)
        thread = discord.channels.get(thread_id)
        messages = [m for m in (thread.messages if thread is not None else [])
                    if int(m["author"]["id"]) == bot_id and "_only" not in m]
        posted = Counter((m.get("content") or "").split(TABLE_LINE, 1)[0] for m in messages
                         if TABLE_LINE in (m.get("content") or ""))
        audit.moves_saved += sum(saved.values())
        audit.moves_posted += sum(posted.values())
        lost = sum((saved - posted).values())
        dup = sum((posted - saved).values())
        if lost or dup:
            audit.note(f"game {game_id}: {lost} saved move(s) never posted, {dup} posted twice")
        audit.lost += lost
        audit.duplicated += dup
        card = any((e.get("footer") or {}).get("text", "").startswith(f"game #{game_id}")
                   for m in messages for e in m.get("embeds") or [])
        if status == "finished" and not card and thread is not None:
            audit.cards_unposted += 1
            audit.note(f"game {game_id}: finished ({outcome}) but no result card")
        if status == "active":
            bot_role = "seller" if human_role == "buyer" else "buyer"
            owes = (turns[-1]["role"] == human_role) if turns else state.get("first_mover") == bot_role
            if owes or state.get("outcome"):
                audit.stuck += 1
                audit.owing.append((game_id, thread_id, player_id))
    return audit


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
