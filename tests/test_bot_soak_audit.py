"""The soak's checks (bench/_soak_audit.py) can fail: a lost move, a duplicated one, an unposted
result card, a stuck game and each kind of leak are all counted."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

from bench._soak_audit import Leaks, audit_games, refusal_kind

BOT = 1


def message(text: str, *, author: int = BOT, channel: int = 10, footer: str | None = None,
            private: bool = False) -> dict:
    m = {"author": {"id": str(author)}, "channel_id": str(channel), "content": text,
         "embeds": [{"footer": {"text": footer}}] if footer else []}
    if private:
        m["_only"] = 7
    return m


def turn(role: str, words: str) -> dict:
    return {"role": role, "utterance": words}


def world(tmp_path, games, threads):
    db = tmp_path / "games.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE games (id INTEGER, thread_id INTEGER, status TEXT, "
                    "outcome TEXT, human_role TEXT, state TEXT, player_id INTEGER, updated_at TEXT)")
        con.executemany("INSERT INTO games VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(g, t, s, o, "buyer", json.dumps(st), 7, "2026-12-01T10:00:00+00:00")
                         for g, t, s, o, st in games])
    channels = {t: SimpleNamespace(messages=msgs, guild_id=100) for t, msgs in threads.items()}
    return str(db), SimpleNamespace(bot_user=SimpleNamespace(id=BOT), channels=channels,
                                    guilds={100: None, 200: None})


def test_lost_duplicated_unposted_and_stuck_are_counted(tmp_path):
    ok = {"turns": [turn("seller", "Hi, $200."), turn("buyer", "$100?"), turn("seller", "$180.")],
          "bot": {"restarts": [{"at": 1}]}}
    stuck = {"turns": [turn("seller", "Hi, $200."), turn("buyer", "$100?")], "first_mover": "seller"}
    db, discord = world(tmp_path, [
        (1, 11, "finished", "timeout", ok),
        (2, 12, "active", None, stuck),
    ], {
        11: [message("Hi, $200.\n-# seller's offer $200"), message("$180.\n-# x"),
             message("$180.\n-# x")],                                  # $180 posted twice, no card
        12: [message("Hi, $200.\n-# seller's offer $200", private=True)],  # only privately: lost
    })
    audit = audit_games(db, discord)
    assert (audit.lost, audit.duplicated, audit.cards_unposted, audit.stuck) == (1, 1, 1, 1)
    assert (audit.timeouts, audit.timeouts_after_restart) == (1, 1)
    assert audit.owing == [(2, 12, 7)]  # the soak pokes its player
    later = audit_games(db, discord, stopped_at="2026-12-01T09:00:00+00:00")
    assert (later.timeouts, later.timeouts_after_stop) == (0, 1)  # the players had left
    (tmp_path / "clean").mkdir()
    db, discord = world(tmp_path / "clean", [(3, 13, "finished", "deal", ok)], {
        13: [message("Hi, $200.\n-# a"), message("$180.\n-# b"), message("", footer="game #3")]})
    clean = audit_games(db, discord)
    assert (clean.lost, clean.duplicated, clean.cards_unposted, clean.stuck) == (0, 0, 0, 0)


def test_every_kind_of_leak_is_found(tmp_path):
    _, discord = world(tmp_path, [], {10: []})
    leaks = Leaks(discord, secrets=["haggle-soak-abc"])
    for text in ("fine, $120", "cannot open /tmp/x/haggle.db", "see http://127.0.0.1:8080/v1",
                 "tournament t@200", "work dir haggle-soak-abc", "from a person",
                 "Slow down a little: at most 30 messages, clicks and commands a minute."):
        leaks.observe("new", message(text, author=BOT if text != "from a person" else 5))
    assert (len(leaks.paths), len(leaks.urls), len(leaks.other_servers)) == (2, 1, 1)
    assert leaks.messages == 6 and leaks.refusals == {"rate limit (actions_per_minute)": 1}
    leaks.observe("new", message("tournament t@100"))  # this server's own id: fine
    assert len(leaks.other_servers) == 1
    assert refusal_kind("The `smol` model is busy: 8 games are already waiting") == \
        "model line full (queue_size)"
