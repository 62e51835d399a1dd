"""`haggle play`: haggle in the terminal against an agent (also works piped).

    printf 'hello\\nwould you take 50?\\n60\\nok deal\\n' | haggle play --role buyer --agent rule --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bot.commands._common import add_scenario_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="haggle in the terminal against an agent",
                       description="Haggle against an agent: type messages, one per line. "
                                   "End of input (Ctrl-D) ends the negotiation.")
    p.add_argument("--role", choices=("buyer", "seller"), default="buyer",
                   help="YOUR role (the agent takes the other)")
    p.add_argument("--agent", help="agent name from config.toml (default: the configured "
                                   "agent for the other role)")
    add_scenario_args(p)
    p.add_argument("--json", action="store_true",
                   help="print the whole record as one JSON object at the end (transcript to stderr)")
    p.set_defaults(func=run)


def _say(out, who: str, text: str) -> None:
    print(f"{who}: {text}", file=out, flush=True)


def new_game(cfg, scenario, agent, *, human_role, seed: int | None, max_turns: int | None = None):
    """The game `haggle play` sets up: the agent's limit drawn privately for this game
    (``[negotiation] reservation_spread``, seeded; a fresh secret seed when none is given).
    Returns (game, the seed of the draw)."""
    import secrets

    from bot.negotiation.scenario import draw_private_limit
    from bot.negotiation.session import HumanGame
    from bot.negotiation.turns import Role

    human = Role.parse(human_role)
    limit_seed = secrets.randbelow(2**31) if seed is None else seed
    scenario = draw_private_limit(scenario, human.other, seed=limit_seed,
                                  spread=cfg.negotiation.reservation_spread)
    game = HumanGame(scenario, agent, human_role=human, max_turns=max_turns or cfg.negotiation.max_turns,
                     first_mover=cfg.negotiation.first_mover,
                     turn_timeout=cfg.negotiation.turn_timeout_s)
    return game, limit_seed


async def play_session(game, read_line, out, *, interactive: bool = False):
    """Play ``game`` with the lines ``await read_line(game)`` returns ("" = end of input)
    and print the transcript and the result to ``out``; returns the record. `haggle play`
    reads stdin; bench/human_strategies.py scripts the person through this same function."""
    from bot.negotiation.prompts import money
    from bot.negotiation.turns import Role

    human, bot_role = game.human_role, game.human_role.other
    scenario = game.scenario
    print(f"You are the {human.value}. Item: {scenario.title} (listed at "
          f"{money(scenario.listing_price)}). Your target: {money(scenario.target(human))}. "
          f"Up to {game.negotiation.max_turns} turns; type 'deal' to accept, 'bye' to walk away.",
          file=out, flush=True)
    bot_label = bot_role.value.capitalize()
    for turn in await game.start():
        _say(out, bot_label, turn.utterance)
    while not game.done:
        if interactive:
            print("> ", end="", file=out, flush=True)
        line = await read_line(game)
        if not line:  # EOF: the person left
            game.abandon()
            break
        if not line.strip():
            continue
        exchange = await game.say(line.rstrip("\n"))
        if exchange.notice:
            print(f"({exchange.notice})", file=out, flush=True)
        for turn in exchange.turns[1:]:
            _say(out, bot_label, turn.utterance)
    record = game.record()
    res = record.scenario.reservation(bot_role)  # private until now: revealed with the result
    word = "bottom line" if bot_role is Role.SELLER else "ceiling"
    if record.deal_price is not None:
        print(f"Deal at {money(record.deal_price)}. The {bot_role.value}'s hidden {word} was "
              f"{money(res)}.", file=out, flush=True)
    else:
        print(f"No deal ({record.outcome.value}). The {bot_role.value}'s hidden {word} was "
              f"{money(res)}.", file=out, flush=True)
    return record


async def _play(args: argparse.Namespace) -> int:
    from bot.agent_factory import AgentFactory
    from bot.commands._common import load_scenario, resolve_config
    from bot.negotiation.turns import Role

    cfg = resolve_config(args)
    human = Role.parse(args.role)
    agent_name = args.agent or cfg.default_agent(human.other)
    scenario = load_scenario(cfg, args)
    out = sys.stderr if args.json else sys.stdout
    factory = AgentFactory(cfg)
    try:
        agent = factory.build(agent_name, human.other, seed=args.seed)
        game, _ = new_game(cfg, scenario, agent, human_role=human, seed=args.seed,
                           max_turns=args.max_turns)

        async def read_line(_game) -> str:
            return await asyncio.to_thread(sys.stdin.readline)

        record = await play_session(game, read_line, out, interactive=sys.stdin.isatty())
    finally:
        await factory.aclose()
    if args.json:
        print(json.dumps(record.to_dict(), indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_play(args))
