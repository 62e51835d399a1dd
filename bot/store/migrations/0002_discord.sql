-- haggle schema, version 2: what the Discord bot keeps beyond version 1's games and settings.
-- Applied by bot/store/db.py inside one transaction, which then sets PRAGMA user_version = 2.

-- The daily challenge a game belongs to ('YYYY-MM-DD'), null for an ordinary game.
ALTER TABLE games ADD COLUMN daily TEXT;
-- One attempt at a server's daily challenge per person per day.
CREATE UNIQUE INDEX games_daily_player ON games (guild_id, daily, player_id)
    WHERE daily IS NOT NULL;
-- "Does this person already have a game running in this server?"
CREATE INDEX games_player_guild ON games (player_id, guild_id) WHERE status = 'active';

-- A server's daily challenge: the same item, agent and seed for everyone that day. Written by
-- the first person who plays it, so a config change during the day does not split the field.
CREATE TABLE daily_challenges (
    guild_id     INTEGER NOT NULL,
    day          TEXT    NOT NULL,                       -- 'YYYY-MM-DD'
    scenario     TEXT    NOT NULL CHECK (json_valid(scenario)),  -- Scenario.to_dict()
    agent        TEXT    NOT NULL,                       -- the configured agent everyone faces
    human_role   TEXT    NOT NULL CHECK (human_role IN ('buyer', 'seller')),
    seed         INTEGER NOT NULL,
    channel_id   INTEGER,                                -- where the day's ranking is posted
    created_at   TEXT    NOT NULL,
    announced_at TEXT,                                   -- when the final ranking was posted
    PRIMARY KEY (guild_id, day)
);

-- Tournaments started from a Discord server (/tournament run): the server's own leaderboard.
CREATE TABLE guild_tournaments (
    guild_id      INTEGER NOT NULL,
    tournament_id INTEGER NOT NULL REFERENCES tournaments(id) ON DELETE CASCADE,
    channel_id    INTEGER,
    started_by    INTEGER,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (guild_id, tournament_id)
);
