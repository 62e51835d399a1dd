"""The bot side of bench/bot_soak.py: the real HaggleBot in a process of its own.

    python -m bench._soak_bot --api URL --gateway URL --token T --db PATH --config FILE.json
                              --stats FILE [--sync]

Points the unmodified discord.py client at the soak's loopback Discord (the same two
redirects ``LoopbackDiscord.install`` makes in-process), runs the bot on the database ``--db``
and appends one JSON line a second to ``--stats``: llama.cpp instances alive (counted here,
around every backend the bot makes, independently of the bot's own pool count), event-loop
lag samples, RSS. SIGTERM closes the bot properly; the soak also SIGKILLs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAG_TICK_S = 0.05
SETTLE_S = 5.0  # lag samples start this long after READY (start-up is the restart, not play)


class InstanceCounter:
    """Wraps the bot's backend factory: llama.cpp backends made and not yet closed."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self.alive = 0
        self.peak = 0
        self.made = 0

    def __call__(self, spec: Any) -> Any:
        backend = self._make(spec)
        if spec.backend not in ("llamacpp", "llamacpp-batched"):
            return backend
        self.alive += 1
        self.made += 1
        self.peak = max(self.peak, self.alive)
        close = backend.aclose
        closed = False

        async def aclose() -> None:
            nonlocal closed
            if not closed:
                closed = True
                self.alive -= 1
            await close()

        backend.aclose = aclose
        return backend


def rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def load_config(path: str) -> Any:
    from dataclasses import replace

    from bot.bot_config import BotConfig
    from bot.config import parse_config

    raw = json.loads(Path(path).read_text())
    bot_table = raw.pop("bot")
    cfg = parse_config(raw, None)
    return replace(cfg, extra={"bot": BotConfig.from_table(bot_table, "bot")})


async def amain(args: argparse.Namespace) -> int:
    import discord.gateway
    import discord.http
    import yarl

    from bot.app import make_bot
    from bot.llm.pool import make_backend

    discord.http.Route.BASE = args.api
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(args.gateway)
    cfg = load_config(args.config)
    counter = InstanceCounter(make_backend)
    bot = make_bot(cfg, store_path=args.db, backend_factory=counter)
    bot._connection.guild_ready_timeout = 0.2
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    lags: list[float] = []
    ready_at: list[float] = []
    started = time.time()

    async def ticker() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(LAG_TICK_S)
            if ready_at and loop.time() - ready_at[0] > SETTLE_S:
                lags.append(loop.time() - t - LAG_TICK_S)

    async def reporter() -> None:
        with open(args.stats, "a", encoding="utf-8") as out:
            while True:
                if not ready_at and bot.is_ready():
                    ready_at.append(loop.time())
                    if args.sync:
                        await bot.tree.sync()
                pool = bot.factory.pool if bot.factory is not None else None
                line = {"pid": os.getpid(), "t": time.time(), "up_s": time.time() - started,
                        "ready": bool(ready_at), "alive": counter.alive, "peak": counter.peak,
                        "made": counter.made,
                        "pool_instances": pool.instances if pool is not None else 0,
                        "pool_peak": pool.peak if pool is not None else 0,
                        "pool_refused": pool.refused if pool is not None else 0,
                        "cap": bot.settings.max_model_instances,
                        "rate_refused": bot.rate_limits.refused,
                        "lags": [round(x, 5) for x in lags], "rss_kb": rss_kb(),
                        "peak_rss_kb": peak_rss_kb()}
                lags.clear()
                out.write(json.dumps(line) + "\n")
                out.flush()
                await asyncio.sleep(1.0)

    import faulthandler

    async def heartbeat() -> None:
        """Stalls of the loop past 0.3 s dump every thread's stack to the log (faulthandler's
        own thread: it needs no GIL, so it sees a thread that holds it too)."""
        while True:
            if ready_at and args.stall_dumps:
                faulthandler.dump_traceback_later(0.3, exit=False)
            await asyncio.sleep(0.02)

    tasks = [asyncio.create_task(ticker()), asyncio.create_task(reporter()),
             asyncio.create_task(heartbeat())]
    runner = asyncio.create_task(bot.start(args.token))
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait([runner, stop], return_when=asyncio.FIRST_COMPLETED)
    if not bot.is_closed():
        await bot.close()
    for task in (*tasks, stop):
        task.cancel()
    await asyncio.gather(runner, *tasks, stop, return_exceptions=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--api", "--gateway", "--token", "--db", "--config", "--stats"):
        parser.add_argument(name, required=True)
    parser.add_argument("--sync", action="store_true", help="sync the slash commands when ready")
    parser.add_argument("--stall-dumps", action="store_true",
                        help="log every thread's stack when the loop stalls past 0.3 s")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
