"""``[bot]`` in config.toml: the Discord bot's settings, validated at load.

Light on purpose (no discord import): ``bot.config`` imports it while loading any config,
including for commands that never start the bot. The token itself never lives here, only the
name of the environment variable that holds it.

    [bot]
    token_env = "DISCORD_TOKEN"
    manager_role = "Haggle Manager"
    [bot.daily]
    human_role = "buyer"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.config import Config, from_table, require
from bot.errors import ConfigError


@dataclass(frozen=True)
class DailyConfig:
    """``[bot.daily]``: the daily challenge (everyone in a server haggles for the same item
    against the same agent with the same seed; ranked when the day is over)."""

    enabled: bool = True
    agent: str = ""                 # "" = the server's default agent for the bot's seat
    human_role: Literal["buyer", "seller"] = "buyer"
    scenario_set: str = "agreemate"
    day_starts_utc_hour: int = 0    # the day changes at this hour, UTC

    def check(self, where: str) -> None:
        from bot.scenarios import SCENARIO_SETS

        require(self.scenario_set in SCENARIO_SETS, f"{where}.scenario_set",
                 f"must be one of {', '.join(SCENARIO_SETS)}, got {self.scenario_set!r}")
        require(0 <= self.day_starts_utc_hour <= 23, f"{where}.day_starts_utc_hour",
                 f"must be in [0, 23], got {self.day_starts_utc_hour}")


@dataclass(frozen=True)
class BotConfig:
    """``[bot]``: how the Discord bot behaves. Every value has a working default."""

    token_env: str = "DISCORD_TOKEN"      # the environment variable holding the bot token
    owner_ids: tuple[int, ...] = ()       # who may run owner commands; () = the app's owner(s)
    manager_role: str = "Haggle Manager"  # this role (or Manage Server) runs tournaments, settings
    scenario_set: str = "agreemate"       # the items people haggle over with /haggle
    inactivity_timeout_s: float = 600.0   # a game nobody writes in for this long ends (timeout)
    model_slots: int = 1                  # games one model answers at the same time
    queue_size: int = 10                  # games that may wait for a busy model; more are told so
    haggle_cooldown_s: float = 20.0       # per person: one /haggle or /daily play per this long
    command_cooldown_s: float = 3.0       # per person: /leaderboard, /stats, /models, /tournament
    max_message_chars: int = 1500         # longer game messages are refused with a short reply
    max_tournament_negotiations: int = 60  # /tournament run refuses bigger plans (use the CLI)
    max_tournament_workers: int = 4
    max_running_tournaments: int = 2      # /tournament run across all servers at once; more wait
    max_model_instances: int = 4          # llama.cpp instances alive in the process (games + tournaments)
    actions_per_minute: int = 30          # per person, all servers and games: messages, buttons, commands
    stream_edit_interval_s: float = 1.0   # live streams: at most one message edit per this long
    shards: int = 0                       # 0: one gateway connection; N: N shards; -1: Discord's count
    reply_budget_s: float = 2.5           # a game's reply comes within this long of the person's move,
                                          # the wait in line counted; past it candidates are left out
                                          # and, none passing, the move's template is said (0 = no limit)
    daily: DailyConfig = field(default_factory=DailyConfig)

    def check(self, where: str) -> None:
        from bot.scenarios import SCENARIO_SETS

        require(bool(self.token_env.strip()), f"{where}.token_env",
                 "must name an environment variable, e.g. \"DISCORD_TOKEN\"")
        require(all(i > 0 for i in self.owner_ids), f"{where}.owner_ids",
                 "must be Discord user ids (positive integers)")
        require(self.scenario_set in SCENARIO_SETS, f"{where}.scenario_set",
                 f"must be one of {', '.join(SCENARIO_SETS)}, got {self.scenario_set!r}")
        require(self.inactivity_timeout_s >= 30, f"{where}.inactivity_timeout_s",
                 f"must be >= 30 seconds, got {self.inactivity_timeout_s}")
        require(1 <= self.model_slots <= 64, f"{where}.model_slots",
                 f"must be in [1, 64], got {self.model_slots}")
        require(0 <= self.queue_size <= 10_000, f"{where}.queue_size",
                 f"must be in [0, 10000], got {self.queue_size}")
        for key in ("haggle_cooldown_s", "command_cooldown_s"):
            require(getattr(self, key) >= 0, f"{where}.{key}",
                     f"must be >= 0 seconds (0 = no cooldown), got {getattr(self, key)}")
        require(100 <= self.max_message_chars <= 4000, f"{where}.max_message_chars",
                 f"must be in [100, 4000], got {self.max_message_chars}")
        require(self.shards >= -1, f"{where}.shards",
                f"must be 0 (one connection), a shard count, or -1 (Discord's recommendation), "
                f"got {self.shards}")
        require(self.max_tournament_negotiations >= 1, f"{where}.max_tournament_negotiations",
                 f"must be >= 1, got {self.max_tournament_negotiations}")
        require(1 <= self.max_running_tournaments <= 64, f"{where}.max_running_tournaments",
                 f"must be in [1, 64], got {self.max_running_tournaments}")
        require(1 <= self.max_model_instances <= 256, f"{where}.max_model_instances",
                 f"must be in [1, 256], got {self.max_model_instances}")
        require(self.max_model_instances >= self.model_slots, f"{where}.max_model_instances",
                 f"must be at least model_slots ({self.model_slots}): each slot of a model is an "
                 f"instance, got {self.max_model_instances}")
        require(0 <= self.actions_per_minute <= 10_000, f"{where}.actions_per_minute",
                 f"must be in [0, 10000] (0 = no limit), got {self.actions_per_minute}")
        require(1 <= self.max_tournament_workers <= 16, f"{where}.max_tournament_workers",
                 f"must be in [1, 16], got {self.max_tournament_workers}")
        require(self.reply_budget_s >= 0, f"{where}.reply_budget_s",
                f"must be >= 0 seconds (0 = no limit), got {self.reply_budget_s}")
        require(self.stream_edit_interval_s >= 1.0, f"{where}.stream_edit_interval_s",
                 f"must be >= 1 second (Discord rate-limits faster edits), got "
                 f"{self.stream_edit_interval_s}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str,
                   base_dir: Path | None = None) -> BotConfig:
        """Validate ``[bot]`` (and its ``[bot.daily]`` sub-table)."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table, got {table!r}")
        rest = dict(table)
        if "rephrase_budget_s" in rest:
            raise ConfigError(f"{where}.rephrase_budget_s is now {where}.reply_budget_s: it bounds "
                              f"the whole reply, not only the rephrased round; rename the key")
        daily = from_table(DailyConfig, rest.pop("daily", {}), f"{where}.daily")
        return from_table(cls, rest, where, daily=daily)


def bot_config(cfg: Config) -> BotConfig:
    """The ``[bot]`` section, or the defaults when config.py does not load it."""
    section = cfg.extra.get("bot")
    return section if isinstance(section, BotConfig) else BotConfig()


def check_agents(cfg: Config, settings: BotConfig) -> None:
    """Agent names in ``[bot]`` must exist and fit their seat (ConfigError naming the key)."""
    if settings.daily.agent:
        try:
            agent = cfg.agent(settings.daily.agent)
        except ConfigError as exc:
            raise ConfigError(f"bot.daily.agent: {exc}") from None
        bot_seat = "seller" if settings.daily.human_role == "buyer" else "buyer"
        require(bot_seat in agent.roles, "bot.daily.agent",
                 f"agent {agent.name!r} is a {agent.role} agent and cannot play the {bot_seat} "
                 f"people face when they are the {settings.daily.human_role}")
