"""haggle's SQLite database: tournaments, negotiations and their turns, players, games and
per-server settings. All SQL lives in this package (``bot.store.db`` and the query modules it
mixes in); the schema is the numbered files in ``bot/store/migrations/``."""

from bot.store.db import (
                          SCHEMA_VERSION,
                          DailyChallengeRow,
                          GameRow,
                          GuildSettings,
                          NegotiationRow,
                          Store,
                          TournamentRow,
                          TurnRow,
                          pairing_key,
)
from bot.store.rows import PlayerStanding

__all__ = ["SCHEMA_VERSION", "DailyChallengeRow", "GameRow", "GuildSettings", "NegotiationRow",
           "PlayerStanding", "Store", "TournamentRow", "TurnRow", "pairing_key"]
