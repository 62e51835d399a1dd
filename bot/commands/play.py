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


async def _play(args: argparse.Namespace) -> int:
    from bot.agent_factory import AgentFactory
    from bot.commands._common import load_scenario, resolve_config
    from bot.negotiation.prompts import money
    from bot.negotiation.session import HumanGame
    from bot.negotiation.turns import Role

    cfg = resolve_config(args)
    human = Role.parse(args.role)
    bot_role = human.other
    agent_name = args.agent or cfg.default_agent(bot_role)
    scenario = load_scenario(cfg, args)
    out = sys.stderr if args.json else sys.stdout
    factory = AgentFactory(cfg)
    try:
        agent = factory.build(agent_name, bot_role, seed=args.seed)
        game = HumanGame(scenario, agent, human_role=human, max_turns=args.max_turns or cfg.negotiation.max_turns,
                         first_mover=cfg.negotiation.first_mover,
                         turn_timeout=cfg.negotiation.turn_timeout_s)
        print(f"You are the {human.value}. Item: {scenario.title} (listed at "
              f"{money(scenario.listing_price)}). Your target: {money(scenario.target(human))}. "
              f"Up to {game.negotiation.max_turns} turns; type 'deal' to accept, 'bye' to walk away.",
              file=out, flush=True)
        bot_label = bot_role.value.capitalize()
        for turn in await game.start():
            _say(out, bot_label, turn.utterance)
        interactive = sys.stdin.isatty()
        while not game.done:
            if interactive:
                print("> ", end="", file=out, flush=True)
            line = await asyncio.to_thread(sys.stdin.readline)
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
    finally:
        await factory.aclose()
    res = scenario.reservation(bot_role)
    if record.deal_price is not None:
        print(f"Deal at {money(record.deal_price)}. The {bot_role.value}'s hidden "
              f"{'bottom line' if bot_role is Role.SELLER else 'ceiling'} was {money(res)}.",
              file=out, flush=True)
    else:
        print(f"No deal ({record.outcome.value}).", file=out, flush=True)
    if args.json:
        print(json.dumps(record.to_dict(), indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_play(args))
