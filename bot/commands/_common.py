"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import argparse

from bot.config import Config, load_config
from bot.negotiation.scenario import Scenario
from bot.scenarios import SCENARIO_SETS, load_scenario_set, pick_scenario


def add_scenario_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="random", help="scenario id (or unique prefix), or 'random'")
    p.add_argument("--scenario-set", choices=SCENARIO_SETS, default="agreemate",
                   help="where scenarios come from (default agreemate: the paper's 30, shipped "
                        "with haggle; the craigslist sets after `haggle data fetch craigslist`)")
    p.add_argument("--seed", type=int, default=None, help="seed for the scenario draw and the agents")
    p.add_argument("--max-turns", type=int, default=None, help="turn cap (default from config)")


def resolve_config(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None))


def load_scenario(cfg: Config, args: argparse.Namespace) -> Scenario:
    return pick_scenario(load_scenario_set(cfg, args.scenario_set), args.scenario, args.seed)
