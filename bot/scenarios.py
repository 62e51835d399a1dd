"""Named scenario sets and picking one scenario from a set."""

from __future__ import annotations

import random

from bot.config import Config
from bot.errors import ConfigError, DataError
from bot.negotiation.scenario import Scenario

SCENARIO_SETS = ("craigslist-test", "craigslist-validation", "agreemate")


def check_plan(where: str, scenario_set: str, **counts: int) -> None:
    """A tournament's or grid's scenario set and counts (scenarios, repetitions, workers), with
    errors that name the key under ``where``."""
    if scenario_set not in SCENARIO_SETS:
        raise ConfigError(f"{where}.scenario_set: must be one of {', '.join(SCENARIO_SETS)}, "
                          f"got {scenario_set!r}")
    for key, value in counts.items():
        if value < 1:
            raise ConfigError(f"{where}.{key}: must be >= 1, got {value}")


def load_scenario_set(cfg: Config, name: str) -> list[Scenario]:
    """The scenarios of set ``name``, with reservation prices from ``[negotiation]``.

    ``agreemate`` is the paper's 30 scenarios, shipped with the package; the craigslist sets
    read the file ``[data]`` names (a local path or hf:// reference), else the copy ``haggle
    data fetch craigslist`` keeps in the data cache (bot/data_sources.py), else stop with one
    line saying how to get it.
    """
    from bot import data_sources, datasets
    from bot.agreemate import load_agreemate_scenarios

    fractions = dict(seller_bottom_fraction=cfg.negotiation.seller_bottom_fraction,
                     buyer_ceiling_fraction=cfg.negotiation.buyer_ceiling_fraction)
    if name == "agreemate":
        return load_agreemate_scenarios(**fractions)
    if name in ("craigslist-test", "craigslist-validation"):
        ref = data_sources.locate(cfg, "craigslist", name.removeprefix("craigslist-"))
        return datasets.load_scenarios(ref, **fractions)
    raise DataError(f"unknown scenario set {name!r}; use one of: {', '.join(SCENARIO_SETS)}")


def pick_scenario(scenarios: list[Scenario], which: str | None, seed: int | None = None) -> Scenario:
    """``which`` is a scenario id (or a unique prefix of one), or None/'random' for a seeded draw."""
    if not scenarios:
        raise DataError("the scenario set is empty")
    if which in (None, "", "random"):
        return random.Random(seed).choice(scenarios)
    exact = [s for s in scenarios if s.id == which]
    if exact:
        return exact[0]
    matches = [s for s in scenarios if s.id.startswith(which)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DataError(f"no scenario with id {which!r} (try --scenario random, or pick an id "
                        f"such as {scenarios[0].id!r})")
    raise DataError(f"scenario id prefix {which!r} is ambiguous ({len(matches)} matches)")
