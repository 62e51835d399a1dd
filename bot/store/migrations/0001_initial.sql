-- haggle schema, version 1.
-- Applied by bot/store/db.py inside one transaction, which then sets PRAGMA user_version = 1.
-- Timestamps are ISO 8601 UTC text; JSON columns hold objects (checked with json_valid).
-- Discord ids (snowflakes) fit SQLite's 64-bit INTEGER.

-- A tournament: bot-vs-bot negotiations run by `haggle tournament`, or a reference run
-- imported from elsewhere (`haggle import-agreemate`).
CREATE TABLE tournaments (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL DEFAULT 'tournament' CHECK (kind IN ('tournament', 'reference')),
    -- Everything that decides the results: pairings, scenario ids, repetitions, negotiation
    -- settings, agent and model settings. A rerun with a different snapshot is refused.
    config      TEXT    NOT NULL CHECK (json_valid(config)),
    -- agent name -> what the report needs to compare agents (kind, model, personality, cot, scale)
    agents      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(agents)),
    -- model name -> {"path", "sha256", "parameters", ...} for the models the agents ran on
    models      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(models)),
    seed        INTEGER,
    planned     INTEGER NOT NULL CHECK (planned >= 0),   -- negotiations the plan holds
    source      TEXT,                                    -- imported file, for reference runs
    started_at  TEXT    NOT NULL,
    finished_at TEXT                                     -- set when every planned one is stored
);

-- One finished negotiation. The UNIQUE key is what makes reruns resume instead of duplicate.
CREATE TABLE negotiations (
    id            INTEGER PRIMARY KEY,
    tournament_id INTEGER NOT NULL REFERENCES tournaments(id) ON DELETE CASCADE,
    pairing       TEXT    NOT NULL,                      -- "<buyer> vs <seller>"
    buyer         TEXT    NOT NULL,
    seller        TEXT    NOT NULL,
    scenario_id   TEXT    NOT NULL,
    repetition    INTEGER NOT NULL DEFAULT 0 CHECK (repetition >= 0),
    scenario      TEXT    NOT NULL CHECK (json_valid(scenario)),  -- Scenario.to_dict()
    first_mover   TEXT    NOT NULL CHECK (first_mover IN ('buyer', 'seller')),
    max_turns     INTEGER NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN
                      ('deal', 'reject', 'quit', 'turn_limit', 'timeout', 'abandoned', 'error')),
    deal_price    REAL,
    error         TEXT,                                  -- why it ended as an error, or a note
    started_at    TEXT,
    seconds       REAL,
    -- compute_metrics() output, every key (bot.negotiation.metrics.METRIC_KEYS); undefined = null.
    -- The view negotiation_metrics below spreads the keys into columns.
    metrics       TEXT    NOT NULL CHECK (json_valid(metrics)),
    -- anything else worth keeping (imported rows: source line and the published metric cells)
    extra         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(extra)),
    UNIQUE (tournament_id, buyer, seller, scenario_id, repetition)
);
CREATE INDEX negotiations_pairing ON negotiations (tournament_id, pairing);

-- Every turn of a negotiation, written in the same transaction as the negotiation.
CREATE TABLE turns (
    negotiation_id          INTEGER NOT NULL REFERENCES negotiations(id) ON DELETE CASCADE,
    idx                     INTEGER NOT NULL CHECK (idx >= 0),   -- 0-based position
    role                    TEXT    NOT NULL CHECK (role IN ('buyer', 'seller')),
    act                     TEXT    NOT NULL,            -- an Act value ('unknown' if unrecognised)
    label                   TEXT,                        -- imported data: the raw act label when it differs
    price                   REAL,
    utterance               TEXT    NOT NULL DEFAULT '',
    thought                 TEXT,                        -- hidden chain of thought
    seconds                 REAL,                        -- time inside the agent's respond()
    prompt_tokens           INTEGER,
    prompt_tokens_evaluated INTEGER,
    completion_tokens       INTEGER,
    repaired                INTEGER NOT NULL DEFAULT 0 CHECK (repaired IN (0, 1)),
    fallback                INTEGER NOT NULL DEFAULT 0 CHECK (fallback IN (0, 1)),
    guard                   TEXT,                        -- what the guardrail changed
    PRIMARY KEY (negotiation_id, idx)
) WITHOUT ROWID;

-- The metrics as columns, for people who query the database directly.
CREATE VIEW negotiation_metrics AS
SELECT n.id, t.name AS tournament, n.pairing, n.buyer, n.seller, n.scenario_id, n.repetition,
       n.outcome, n.deal_price,
       json_extract(n.metrics, '$.agreed')                 AS agreed,
       json_extract(n.metrics, '$.dialogue_length')        AS dialogue_length,
       json_extract(n.metrics, '$.fairness')               AS fairness,
       json_extract(n.metrics, '$.bias')                   AS bias,
       json_extract(n.metrics, '$.aggressiveness')         AS aggressiveness,
       json_extract(n.metrics, '$.bias_per_turn')          AS bias_per_turn,
       json_extract(n.metrics, '$.concession_rate')        AS concession_rate,
       json_extract(n.metrics, '$.relative_efficiency')    AS relative_efficiency,
       json_extract(n.metrics, '$.probing_ratio')          AS probing_ratio,
       json_extract(n.metrics, '$.in_zone')                AS in_zone,
       json_extract(n.metrics, '$.reservation_violations') AS reservation_violations,
       json_extract(n.metrics, '$.buyer_surplus_share')    AS buyer_surplus_share,
       json_extract(n.metrics, '$.seller_surplus_share')   AS seller_surplus_share,
       json_extract(n.metrics, '$.tokens_per_turn')        AS tokens_per_turn,
       json_extract(n.metrics, '$.seconds_per_turn')       AS seconds_per_turn,
       json_extract(n.metrics, '$.repeated_utterances')    AS repeated_utterances
FROM negotiations AS n JOIN tournaments AS t ON t.id = n.tournament_id;

-- People who haggle with the Discord bot.
CREATE TABLE players (
    discord_id INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,                         -- display name, refreshed on each game
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);

-- A person's game against an agent. `state` holds what the bot needs to resume the game after
-- a restart (the HumanGame's turns so far and its settings); the result columns are filled
-- when it ends.
CREATE TABLE games (
    id          INTEGER PRIMARY KEY,
    guild_id    INTEGER,                                 -- null in direct messages
    channel_id  INTEGER NOT NULL,
    thread_id   INTEGER,                                 -- the game's thread, if it has one
    player_id   INTEGER NOT NULL REFERENCES players(discord_id),
    scenario_id TEXT    NOT NULL,
    scenario    TEXT    NOT NULL CHECK (json_valid(scenario)),
    agent       TEXT    NOT NULL,                        -- the configured agent the person faces
    human_role  TEXT    NOT NULL CHECK (human_role IN ('buyer', 'seller')),
    status      TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'finished')),
    state       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(state)),
    outcome     TEXT    CHECK (outcome IS NULL OR outcome IN
                    ('deal', 'reject', 'quit', 'turn_limit', 'timeout', 'abandoned', 'error')),
    deal_price  REAL,
    metrics     TEXT    CHECK (metrics IS NULL OR json_valid(metrics)),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
CREATE INDEX games_player ON games (player_id, status);
CREATE INDEX games_guild ON games (guild_id, status);
-- At most one running game per thread, and per channel when games run without threads.
CREATE UNIQUE INDEX games_active_thread ON games (thread_id)
    WHERE status = 'active' AND thread_id IS NOT NULL;
CREATE UNIQUE INDEX games_active_channel ON games (channel_id)
    WHERE status = 'active' AND thread_id IS NULL;

-- Per-server settings a server's admins change with bot commands; null = the config default.
CREATE TABLE guild_settings (
    guild_id      INTEGER PRIMARY KEY,
    default_agent TEXT,                                  -- the agent people face by default
    scenario_set  TEXT,                                  -- where scenarios come from
    max_turns     INTEGER CHECK (max_turns IS NULL OR max_turns >= 2),
    game_channel  INTEGER,                               -- the channel games start in
    settings      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),  -- anything else
    updated_at    TEXT    NOT NULL
);
