"""config.toml -> frozen, validated dataclasses.

One commented config.toml (see the repo root) is read with tomllib. Every table maps to a
frozen dataclass; unknown keys, wrong types and impossible values fail at load with a
ConfigError that names the key (``agents.buyer.temperature: must be >= 0, got -1``).
Secrets never live here: a section names the environment variable that holds them.
"""

from __future__ import annotations

import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from bot.errors import ConfigError
from bot.negotiation.personality import DEFAULT_PERSONALITY, Personality
from bot.negotiation.prompts import SENTENCE_BUDGETS

ENV_CONFIG = "HAGGLE_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"


# --------------------------------------------------------------------------- generic loading

def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints widen to float, nothing else."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin in (tuple, list):
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {where}")  # a bug in this module


def from_table(cls: type, table: Mapping[str, Any], where: str, **fixed: Any) -> Any:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys and bad values.

    ``fixed`` are constructor arguments that do not come from the table (e.g. a name).
    After construction, ``obj.check(where)`` (if defined) validates ranges.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    settable = [f.name for f in fields(cls) if f.init and f.name not in fixed]
    for key in table:
        if key not in settable:
            raise ConfigError(f"{where}.{key}: unknown key (known keys: {', '.join(settable)})")
    kwargs = {name: _coerce(table[name], hints[name], f"{where}.{name}")
              for name in settable if name in table}
    obj = cls(**kwargs, **fixed)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where)
    return obj


def require(ok: bool, where: str, message: str) -> None:
    """A range check of a ``check(where)`` method: a ConfigError naming the key unless ``ok``."""
    if not ok:
        raise ConfigError(f"{where}: {message}")


# --------------------------------------------------------------------------- sections

@dataclass(frozen=True)
class NegotiationConfig:
    max_turns: int = 15
    first_mover: Literal["buyer", "seller"] = "buyer"
    seller_bottom_fraction: float = 0.7
    buyer_ceiling_fraction: float = 1.0
    reservation_spread: float = 0.175  # the best one-price script keeps 0.52 of the zone (0.1: 0.70); docs/game.md
    turn_timeout_s: float = 120.0
    # bot-vs-bot: a side whose model fails (unreachable, load failure, HTTP error, timeout) on
    # this many consecutive turns, or on every turn it plays, voids the negotiation as an error
    max_model_failures: int = 3

    def check(self, where: str) -> None:
        require(self.max_turns >= 2, f"{where}.max_turns", f"must be >= 2, got {self.max_turns}")
        require(self.max_model_failures >= 1, f"{where}.max_model_failures",
                f"must be >= 1, got {self.max_model_failures}")
        for key in ("seller_bottom_fraction", "buyer_ceiling_fraction"):
            v = getattr(self, key)
            require(0 < v <= 2, f"{where}.{key}", f"must be in (0, 2], got {v}")
        require(0 <= self.reservation_spread < min(self.seller_bottom_fraction, 1.0),
                f"{where}.reservation_spread",
                f"must be >= 0 and below seller_bottom_fraction (and 1), got {self.reservation_spread}")
        require(self.turn_timeout_s > 0, f"{where}.turn_timeout_s",
                 f"must be > 0 seconds, got {self.turn_timeout_s}")


@dataclass(frozen=True)
class DataConfig:
    """Where datasets live: local paths (relative to the config file) or hf:// references.

    "" (the default) reads the copy ``haggle data fetch`` put in the data cache
    (bot/data_sources.py).
    """

    craigslist_test: str = ""
    craigslist_validation: str = ""
    craigslist_train: str = ""
    deal_or_no_deal: str = ""
    agreemate_results: str = ""


@dataclass(frozen=True)
class AgentConfig:
    """One named agent ([agents.NAME])."""

    name: str
    kind: Literal["llm", "rule"] = "llm"
    role: Literal["buyer", "seller", "generalist"] = "generalist"
    model: str = "default"
    personality: Personality = DEFAULT_PERSONALITY
    cot: bool = False
    policy: Literal["llm", "hybrid"] = "llm"
    # sampling (llm agents)
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    max_tokens: int = 160
    seed: int | None = None
    max_repairs: int = 1
    # hybrid agents: narrations sampled per turn, the best passing the checks is said
    # (bot/negotiation/narration.py); 1 = a single sample, re-asked on a problem
    candidates: int = 1
    # which passing candidate is said: the model's likeliest (all are drawn), the shortest (all
    # drawn; ties: the likeliest), the first that passes (the rest are not drawn: fewer tokens
    # a turn), or the one the line reader fit on blind readings scores highest (all drawn;
    # bot/negotiation/line_reader.py); docs/narration.md
    pick: Literal["likeliest", "shortest", "first", "reader"] = "likeliest"
    # the reply budget of a hybrid agent's priced moves and accepts, in sentences: 1 = the one
    # sentence that states the move; unset = as people write (docs/narration.md)
    sentences: int | None = None
    # hybrid agents with candidates: when none passes, a second round, each candidate begun with
    # a word people begin that move with and this agent has not (bot/negotiation/openers.py)
    rephrase: bool = False
    # hybrid agents: a passing candidate the line reader (bot/negotiation/line_reader.py) gives
    # less than this chance of reading sensible fails as a check would; unset: no floor
    reader_floor: float | None = None
    # rule agents: fraction of the remaining gap conceded per turn, and the gap (a fraction
    # of the listing price) within which an offer is accepted
    concession: float = 0.25
    accept_gap: float = 0.03
    chatter: float = 0.2

    def check(self, where: str) -> None:
        require(self.temperature >= 0, f"{where}.temperature", f"must be >= 0, got {self.temperature}")
        require(0 < self.top_p <= 1, f"{where}.top_p", f"must be in (0, 1], got {self.top_p}")
        require(self.top_k >= 0, f"{where}.top_k", f"must be >= 0, got {self.top_k}")
        require(self.repeat_penalty > 0, f"{where}.repeat_penalty",
                 f"must be > 0, got {self.repeat_penalty}")
        require(16 <= self.max_tokens <= 4096, f"{where}.max_tokens",
                 f"must be in [16, 4096], got {self.max_tokens}")
        require(0 <= self.max_repairs <= 5, f"{where}.max_repairs",
                 f"must be in [0, 5], got {self.max_repairs}")
        require(1 <= self.candidates <= 8, f"{where}.candidates",
                f"must be in [1, 8], got {self.candidates}")
        require(self.sentences in SENTENCE_BUDGETS, f"{where}.sentences",
                f"must be 1 (one sentence) or left out (as people write), got {self.sentences}")
        require(self.reader_floor is None or (self.policy == "hybrid" and 0 < self.reader_floor < 1),
                f"{where}.reader_floor", f"must be in (0, 1) on a hybrid agent, or left out; got "
                f"{self.reader_floor}")
        require(not self.rephrase or (self.policy == "hybrid" and self.candidates > 1),
                f"{where}.rephrase", "needs policy = \"hybrid\" and candidates > 1 (a single "
                "sample is re-asked instead)")
        require(0 < self.concession <= 1, f"{where}.concession",
                 f"must be in (0, 1], got {self.concession}")
        require(0 <= self.accept_gap < 1, f"{where}.accept_gap",
                 f"must be in [0, 1), got {self.accept_gap}")
        require(0 <= self.chatter <= 1, f"{where}.chatter", f"must be in [0, 1], got {self.chatter}")

    @property
    def roles(self) -> tuple[str, ...]:
        return ("buyer", "seller") if self.role == "generalist" else (self.role,)


@dataclass(frozen=True)
class StoreConfig:
    path: str = "haggle.db"


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    negotiation: NegotiationConfig = field(default_factory=NegotiationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    models: Mapping[str, Any] = field(default_factory=dict)   # name -> bot.llm.models.ModelSpec
    agents: Mapping[str, AgentConfig] = field(default_factory=dict)
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # sections owned elsewhere

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve_path(self, value: str | os.PathLike) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def default_agent(self, role: str | Any) -> str:
        """The agent that faces a person by default in seat ``role``: the first configured
        agent whose name is the role itself, else the first one that can sit there."""
        role_name = getattr(role, "value", role)
        if role_name in self.agents and role_name in self.agents[role_name].roles:
            return role_name
        for name, agent in self.agents.items():
            if role_name in agent.roles:
                return name
        raise ConfigError(f"no agent in {self.path or 'config.toml'} can play the {role_name}; "
                          f"add an [agents.NAME] table with role = \"{role_name}\"")

    def agent(self, name: str) -> AgentConfig:
        try:
            return self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents)) or "none"
            raise ConfigError(f"unknown agent {name!r}; configured agents: {known} "
                              f"(add an [agents.{name}] table to {self.path or 'config.toml'})") from None


# Sections whose validation lives with their owner module: name -> "module:attr.path" of a
# callable taking (table, where, base_dir) and returning the validated object (cfg.extra[name]).
# The owner module must be cheap to import (no torch, discord or llama_cpp at module level).
EXTRA_SECTIONS: dict[str, str] = {
    "bot": "bot.bot_config:BotConfig.from_table",
    "tournament": "bot.tournament:TournamentConfig.from_table",
    "training": "training.config:training_section",
}
_CORE_SECTIONS = {"negotiation", "data", "store", "models", "agents"}


def find_config(explicit: str | os.PathLike | None = None) -> Path | None:
    """The config file to use: explicit path, $HAGGLE_CONFIG, ./config.toml, or the repo's."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        return p
    env = os.environ.get(ENV_CONFIG)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ConfigError(f"{ENV_CONFIG}={env} does not name a file")
        return p
    for candidate in (Path.cwd() / DEFAULT_CONFIG_NAME, Path(__file__).resolve().parents[1] / DEFAULT_CONFIG_NAME):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | os.PathLike | None = None) -> Config:
    found = find_config(path)
    if found is None:
        return parse_config({}, None)
    try:
        with open(found, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{found}: not valid TOML: {exc}") from None
    return parse_config(raw, found)


def parse_config(raw: Mapping[str, Any], path: Path | None) -> Config:
    """Validate a parsed TOML document."""
    from importlib import import_module

    unknown = set(raw) - _CORE_SECTIONS - set(EXTRA_SECTIONS)
    if unknown:
        known = ", ".join(sorted(_CORE_SECTIONS | set(EXTRA_SECTIONS)))
        raise ConfigError(f"unknown section(s) [{', '.join(sorted(unknown))}] (known: {known})")
    base_dir = path.parent if path else Path.cwd()
    negotiation = from_table(NegotiationConfig, raw.get("negotiation", {}), "negotiation")
    data = from_table(DataConfig, raw.get("data", {}), "data")
    store = from_table(StoreConfig, raw.get("store", {}), "store")

    from bot.llm.models import ModelSpec  # light: no llama_cpp import

    models_raw = raw.get("models", {})
    if not isinstance(models_raw, Mapping):
        raise ConfigError("models: expected tables [models.NAME]")
    models = {name: ModelSpec.from_table(name, table, base_dir) for name, table in models_raw.items()}
    if "default" not in models:
        models["default"] = ModelSpec.from_table("default", {}, base_dir)

    agents_raw = raw.get("agents", {})
    if not isinstance(agents_raw, Mapping):
        raise ConfigError("agents: expected tables [agents.NAME]")
    agents = {name: from_table(AgentConfig, table, f"agents.{name}", name=name)
              for name, table in agents_raw.items()}
    for name, agent in agents.items():
        if agent.kind == "llm" and agent.model not in models:
            raise ConfigError(f"agents.{name}.model: no model named {agent.model!r} "
                              f"(configured: {', '.join(sorted(models))})")

    extra = {}
    for section, target in EXTRA_SECTIONS.items():
        module_name, attr_path = target.split(":")
        builder: Any = import_module(module_name)
        for attr in attr_path.split("."):
            builder = getattr(builder, attr)
        extra[section] = builder(raw.get(section, {}), section, base_dir)
    return Config(path=path, negotiation=negotiation, data=data, store=store, models=models,
                  agents=agents, extra=extra)
