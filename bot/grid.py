"""The experiment grid file (TOML): parsing, validation, and its expansion into agents and
pairings (``bot.experiment`` plans and plays them).

A grid file::

    [experiment]
    name = "cpu-demo"            # tournament names start with "cpu-demo/"
    scenario_set = "agreemate"   # the paper's 30 scenarios (like for like with its runs)
    scenarios = 2                # drawn with seed (all of the set when it is the set's size)
    repetitions = 1
    seed = 0
    policy = "llm"               # "llm": the model decides act and price; "hybrid"
    pairings = "paper"           # "paper", "baseline" or "cross" (see below)
    max_turns = 10               # optional; default from [negotiation] of config.toml
    workers = 1

    [experiment.baseline]        # the reference agent (default: first model, no CoT, fair)
    model = "smol"
    cot = false
    personality = "fair"

    [models.smol]                # like config.toml's [models.NAME]; paths relative to the grid
    path = "embedded"

    [grid]
    models = ["smol"]            # base models: play either seat
    cot = [false, true]
    personality = ["aggressive", "fair", "passive"]
    buyer_models = []            # fine-tuned buyer specialists: the buyer seat only
    seller_models = []           # fine-tuned seller specialists: the seller seat only
    generalist_models = []       # fine-tuned generalists: either seat

    [agent]                      # settings every agent shares: any [agents.NAME] key of
    temperature = 0.7            # config.toml except kind, role, model, personality, cot, policy
    seed = 0

Agent names are ``MODEL[-cot]-PERSONALITY-SEAT`` (``3B-cot-fair-buyer``). Families follow the
paper's file names: base models are ``baseline``, buyer and seller specialists ``finetune``,
generalist fine-tunes ``generalist``.

Pairings:

- ``paper``: the paper's three experiments. Scale x CoT: every base model with and without CoT
  (baseline personality) as buyer against every one as seller. Personality: the baseline model
  and CoT setting with every buyer personality against every seller personality. Role models
  (baseline CoT and personality): fine-tuned buyers against fine-tuned sellers, each generalist
  against itself, each role model against the baseline agent of the other seat, and baseline
  against baseline.
- ``baseline``: every buyer variant against the baseline seller and every seller variant
  against the baseline buyer.
- ``cross``: every buyer variant against every seller variant.

Everything but the negotiation set-up ([negotiation], [data]) and the default database
([store]) comes from the grid file; the rest of config.toml is not used, so a grid file is a
complete, shareable description of an experiment.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bot.config import AgentConfig, Config, from_table
from bot.errors import ConfigError
from bot.llm.models import ModelSpec
from bot.negotiation.personality import DEFAULT_PERSONALITY, Personality

SEATS = ("buyer", "seller")
# What the grid sets on every agent itself; the [agent] table may not set these.
GRID_OWNED = ("name", "kind", "role", "model", "personality", "cot", "policy")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------- the grid file


@dataclass(frozen=True)
class Baseline:
    """``[experiment.baseline]``: the reference agent. ``model`` defaults to the first model."""

    model: str | None = None
    cot: bool = False
    personality: Personality = DEFAULT_PERSONALITY


@dataclass(frozen=True)
class ExperimentSettings:
    """``[experiment]``."""

    name: str
    scenario_set: str = "agreemate"
    scenarios: int = 30
    repetitions: int = 1
    seed: int = 0
    policy: Literal["llm", "hybrid"] = "llm"
    pairings: Literal["paper", "baseline", "cross"] = "paper"
    max_turns: int | None = None
    workers: int = 1

    def check(self, where: str) -> None:
        from bot.scenarios import check_plan

        if not _NAME.match(self.name):
            raise ConfigError(f"{where}.name: {self.name!r} must be letters, digits, '_', '.' or "
                              f"'-' (it starts every tournament name)")
        check_plan(where, self.scenario_set, scenarios=self.scenarios,
                   repetitions=self.repetitions, workers=self.workers)
        if self.max_turns is not None and self.max_turns < 2:
            raise ConfigError(f"{where}.max_turns: must be >= 2, got {self.max_turns}")


@dataclass(frozen=True)
class Axes:
    """``[grid]``: the axes the agents are expanded over."""

    models: tuple[str, ...] = ()
    cot: tuple[bool, ...] = (False,)
    personality: tuple[Personality, ...] = (DEFAULT_PERSONALITY,)
    buyer_models: tuple[str, ...] = ()
    seller_models: tuple[str, ...] = ()
    generalist_models: tuple[str, ...] = ()

    def check(self, where: str) -> None:
        if not self.models:
            raise ConfigError(f"{where}.models: name at least one base model (a [models.NAME] "
                              f"table); it is the baseline the other agents are compared with")
        for key in ("cot", "personality"):
            values = getattr(self, key)
            if not values:
                raise ConfigError(f"{where}.{key}: give at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"{where}.{key}: a value is listed twice: {list(values)}")
        listed: dict[str, str] = {}
        for key in ("models", "buyer_models", "seller_models", "generalist_models"):
            for model in getattr(self, key):
                if model in listed:
                    raise ConfigError(f"{where}.{key}: model {model!r} is already listed in "
                                      f"{where}.{listed[model]}; a model has one role")
                listed[model] = key

    def family(self, model: str) -> str:
        if model in self.models:
            return "baseline"
        return "generalist" if model in self.generalist_models else "finetune"

    def seats(self, model: str) -> tuple[str, ...]:
        if model in self.buyer_models:
            return ("buyer",)
        if model in self.seller_models:
            return ("seller",)
        return SEATS

    @property
    def all_models(self) -> tuple[str, ...]:
        return self.models + self.buyer_models + self.seller_models + self.generalist_models


@dataclass(frozen=True)
class Grid:
    """A validated grid file."""

    path: Path | None
    experiment: ExperimentSettings
    baseline: Baseline
    axes: Axes
    models: Mapping[str, ModelSpec]
    agent: Mapping[str, Any]   # the [agent] table (validated against AgentConfig)

    @property
    def name(self) -> str:
        return self.experiment.name


_SECTIONS = ("experiment", "models", "grid", "agent")


def parse_grid(raw: Mapping[str, Any], path: Path | None = None) -> Grid:
    """Validate a parsed grid file; every error names its key and says what to do."""
    where = str(path) if path else "grid"
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) [{', '.join(unknown)}] (a grid file has "
                          f"{', '.join(f'[{s}]' for s in _SECTIONS)})")
    if "experiment" not in raw:
        raise ConfigError(f"{where}: missing [experiment] (at least name = \"...\")")
    if not isinstance(raw["experiment"], Mapping):
        raise ConfigError(f"experiment: expected a table, got {raw['experiment']!r}")
    table = dict(raw["experiment"])
    baseline_raw = table.pop("baseline", {})
    if "name" not in table:
        raise ConfigError("experiment.name: missing; name the experiment (its tournaments are "
                          "called NAME/BUYER+SELLER)")
    settings = from_table(ExperimentSettings, table, "experiment")
    baseline = from_table(Baseline, baseline_raw, "experiment.baseline")
    axes = from_table(Axes, raw.get("grid", {}), "grid")

    models_raw = raw.get("models", {})
    if not isinstance(models_raw, Mapping) or not models_raw:
        raise ConfigError("models: declare the grid's models as [models.NAME] tables (path = "
                          "\"embedded\", a .gguf path or hf://OWNER/REPO/FILE.gguf)")
    base_dir = path.parent if path else Path.cwd()
    models = {}
    for name, spec in models_raw.items():
        if not _NAME.match(name):
            raise ConfigError(f"models.{name}: a model name must be letters, digits, '_', '.' or "
                              f"'-' (it starts agent names)")
        models[name] = ModelSpec.from_table(name, spec, base_dir)
    for key in ("models", "buyer_models", "seller_models", "generalist_models"):
        for model in getattr(axes, key):
            if model not in models:
                raise ConfigError(f"grid.{key}: no model named {model!r}; declared: "
                                  f"{', '.join(models)} (add a [models.{model}] table)")
    unused = [m for m in models if m not in axes.all_models]
    if unused:
        raise ConfigError(f"models.{unused[0]}: declared but on no axis; list it in grid.models, "
                          f"grid.buyer_models, grid.seller_models or grid.generalist_models, or "
                          f"remove it")

    if baseline.model is None:
        baseline = replace(baseline, model=axes.models[0])
    elif baseline.model not in axes.models:
        raise ConfigError(f"experiment.baseline.model: {baseline.model!r} is not a base model of "
                          f"grid.models ({', '.join(axes.models)})")
    if baseline.cot not in axes.cot:
        raise ConfigError(f"experiment.baseline.cot: {str(baseline.cot).lower()} is not among "
                          f"grid.cot {[str(c).lower() for c in axes.cot]}")
    if baseline.personality not in axes.personality:
        raise ConfigError(f"experiment.baseline.personality: {baseline.personality!r} is not "
                          f"among grid.personality {list(axes.personality)}")

    agent = raw.get("agent", {})
    if not isinstance(agent, Mapping):
        raise ConfigError(f"agent: expected a table, got {agent!r}")
    for key in agent:
        if key in GRID_OWNED:
            raise ConfigError(f"agent.{key}: set by the grid for every agent; remove it (the "
                              f"axes are [grid] cot/personality, the policy is experiment.policy)")
    # Validated once here; every agent is built from the same table.
    from_table(AgentConfig, agent, "agent", name="check", kind="llm", role="buyer",
               model=axes.models[0], personality=DEFAULT_PERSONALITY, cot=False, policy=settings.policy)
    return Grid(path=path, experiment=settings, baseline=baseline, axes=axes, models=models,
                agent=dict(agent))


def load_grid(path: str | Path) -> Grid:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist; see examples/grid_cpu.toml")
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_grid(raw, path)


# --------------------------------------------------------------------------- expansion


@dataclass(frozen=True)
class Variant:
    """One agent of the grid: a model in one seat with a CoT setting and a personality."""

    model: str
    family: str  # baseline | finetune | generalist (the paper's file-name families)
    seat: str
    cot: bool
    personality: str

    @property
    def name(self) -> str:
        return f"{self.model}{'-cot' if self.cot else ''}-{self.personality}-{self.seat}"


@dataclass(frozen=True)
class GridPairing:
    buyer: Variant
    seller: Variant
    blocks: tuple[str, ...]  # which of the paper's experiments it belongs to

    @property
    def key(self) -> tuple[str, str]:
        return (self.buyer.name, self.seller.name)


def variants(grid: Grid) -> list[Variant]:
    """Every model x CoT x personality x seat the grid allows, in a stable order."""
    out = []
    for model in grid.axes.all_models:
        for seat in grid.axes.seats(model):
            for cot in grid.axes.cot:
                for personality in grid.axes.personality:
                    out.append(Variant(model, grid.axes.family(model), seat, cot, personality))
    return out


def expand_grid(grid: Grid) -> list[GridPairing]:
    """The pairings to play, each once (a pairing in several blocks lists them all)."""
    every = variants(grid)
    base = grid.baseline

    def pick(seat: str, *, families: Sequence[str] = ("baseline",), models: Sequence[str] = (),
             cot: bool | None = None, personality: str | None = None) -> list[Variant]:
        return [v for v in every if v.seat == seat and v.family in families
                and (not models or v.model in models)
                and (cot is None or v.cot == cot)
                and (personality is None or v.personality == personality)]

    def reference(seat: str) -> Variant:
        return Variant(base.model, "baseline", seat, base.cot, base.personality)

    pairs: dict[tuple[str, str], GridPairing] = {}

    def add(buyers: Sequence[Variant], sellers: Sequence[Variant], block: str) -> None:
        for b in buyers:
            for s in sellers:
                key = (b.name, s.name)
                if key in pairs:
                    if block not in pairs[key].blocks:
                        pairs[key] = replace(pairs[key], blocks=pairs[key].blocks + (block,))
                else:
                    pairs[key] = GridPairing(b, s, (block,))

    mode = grid.experiment.pairings
    roles = ("baseline", "finetune", "generalist")
    if mode == "cross":
        add([v for v in every if v.seat == "buyer"], [v for v in every if v.seat == "seller"],
            "cross")
    elif mode == "baseline":
        add([v for v in every if v.seat == "buyer"], [reference("seller")], "baseline")
        add([reference("buyer")], [v for v in every if v.seat == "seller"], "baseline")
    else:
        neutral = base.personality
        add(pick("buyer", personality=neutral), pick("seller", personality=neutral), "scale-cot")
        add(pick("buyer", models=[base.model], cot=base.cot),
            pick("seller", models=[base.model], cot=base.cot), "personality")
        role_models = (grid.axes.buyer_models + grid.axes.seller_models
                       + grid.axes.generalist_models)
        if role_models:
            same = {"cot": base.cot, "personality": neutral}
            add(pick("buyer", families=["finetune"], **same),
                pick("seller", families=["finetune"], **same), "roles")
            for model in grid.axes.generalist_models:
                add(pick("buyer", families=["generalist"], models=[model], **same),
                    pick("seller", families=["generalist"], models=[model], **same), "roles")
            add(pick("buyer", families=roles[1:], **same), [reference("seller")], "roles")
            add([reference("buyer")], pick("seller", families=roles[1:], **same), "roles")
            add([reference("buyer")], [reference("seller")], "roles")
    return list(pairs.values())


def agent_table(grid: Grid, v: Variant) -> dict[str, Any]:
    """The [agents.NAME] table of one variant."""
    return {**grid.agent, "kind": "llm", "role": v.seat, "model": v.model,
            "personality": v.personality, "cot": v.cot, "policy": grid.experiment.policy}


def grid_config(base: Config, grid: Grid, pairings: Sequence[GridPairing]) -> Config:
    """``base`` (negotiation, data, store) with the grid's models and agents."""
    used = {v.name: v for p in pairings for v in (p.buyer, p.seller)}
    agents = {name: from_table(AgentConfig, agent_table(grid, v), f"agents.{name}", name=name)
              for name, v in used.items()}
    models = {name: spec for name, spec in grid.models.items()
              if any(a.model == name for a in agents.values())}
    return replace(base, models=models, agents=agents)
