"""Does the Discord bot stay responsive while many games wait on a slow model?

Drives the real bot (HaggleBot and its Games cog, a real SQLite file, the fake Discord objects of
tests/bot_fakes.py): ``--games`` people open a game at once against an LLM agent whose model
takes ``--turn-ms`` per turn, then each sends ``--messages`` offers, one after the other like a
person who reads the answer first. Printed, side by side in one run:

- event-loop lag: a probe task asks to wake every 5 ms and records how late it wakes
  (p50 / p99 / max; the goal is p99 < 50 ms: Discord's heartbeats and every other server's
  commands run on this loop);
- turn latency: from a person's message to the bot's answer in the thread (p50 / p99), queue
  waits included, beside the model time per turn.

Two backends take the same time per turn: the one the bot is built for, whose blocking call
runs in a worker thread (like llama.cpp's), and, as the baseline, one that blocks the event
loop itself (what a model call on the loop would do).

    .venv/bin/python bench/bot_event_loop.py [--games 20] [--turn-ms 200] [--messages 5] [--slots 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fake Discord objects live with the tests

from bot_fakes import LONGBOARD, World, invoke, make_config, start_bot  # noqa: E402

from bot.llm.base import ChatResult  # noqa: E402
from bot.llm.fake import FakeBackend  # noqa: E402


def seller_reply(messages: Any) -> str:
    """A seller that lowers its price $5 per turn it has played (its earlier replies are the
    assistant messages of its prompt), so no reply repeats an earlier one."""
    played = sum(1 for m in messages if m["role"] == "assistant")
    price = 195 - 5 * played
    return json.dumps({"act": "counter-price", "price": price,
                       "utterance": f"I could let it go for ${price}."})


class LoopBlockingBackend:
    """The baseline: the same model time, spent blocking the event loop."""

    def __init__(self, seconds: float) -> None:
        self.name = "blocking"
        self.seconds = seconds

    async def chat(self, messages: Any, **kwargs: Any) -> ChatResult:
        time.sleep(self.seconds)  # noqa: ASYNC251 - on the loop on purpose: the bad baseline
        return ChatResult(text=seller_reply(messages), seconds=self.seconds)

    async def aclose(self) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else (values[0] if values else float("nan"))


async def one_run(backend_for: Any, args: argparse.Namespace, db: Path) -> dict[str, Any]:
    cfg = make_config(bot={"model_slots": args.slots, "queue_size": args.games * 2})
    bot = await start_bot(db.parent, cfg, db=db, backend_factory=lambda spec: backend_for())
    world = World(bot)
    people = [world.person(f"player{i}") for i in range(args.games)]
    lags: list[float] = []
    latencies: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def probe() -> None:
        interval = 0.005
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(interval)
            lags.append(max(0.0, loop.time() - t - interval))

    async def player(i: int, person: Any) -> None:
        interaction = world.interaction(person, namespace={"role": "buyer"})
        await invoke(world.games.haggle, interaction, item=LONGBOARD, agent="llm-seller")
        thread = next(t for t in world.channel.threads
                      if t.name.startswith(f"{person.name} haggles"))
        for k in range(args.messages):
            await asyncio.sleep(0.01 * (i % 5))  # people do not type in lockstep
            answers = len(thread.messages)
            t0 = time.perf_counter()
            await world.say(person, thread, f"would you take ${100 + 5 * k}?")
            latencies.append(time.perf_counter() - t0)
            assert len(thread.messages) > answers, "the bot did not answer"

    watcher = asyncio.create_task(probe())
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(player(i, p) for i, p in enumerate(people)))
    finally:
        wall = time.perf_counter() - t0
        stop.set()
        await watcher
        await bot.close()
    return {"lags": lags, "latencies": latencies, "wall": wall}


def row(label: str, result: dict[str, Any]) -> str:
    lag, lat = result["lags"], result["latencies"]
    return (f"{label:<27} {1000 * percentile(lag, 50):8.1f} {1000 * percentile(lag, 99):8.1f} "
            f"{1000 * max(lag):8.1f}   {percentile(lat, 50):7.2f} {percentile(lat, 99):7.2f}"
            f"   {len(lat):5d} {result['wall']:7.1f}")


async def main(args: argparse.Namespace) -> int:
    seconds = args.turn_ms / 1000
    with tempfile.TemporaryDirectory(prefix="haggle-bench-") as tmp:
        threaded = await one_run(lambda: FakeBackend(default=seller_reply, delay=seconds), args,
                                 Path(tmp) / "threaded.db")
        blocking = await one_run(lambda: LoopBlockingBackend(seconds), args,
                                 Path(tmp) / "blocking.db")
    print(f"{args.games} concurrent games x {args.messages} messages; the model takes "
          f"{args.turn_ms} ms per turn; {args.slots} model slot(s)")
    print(f"{'':<27} {'loop lag ms':^26}   {'turn latency s':^15}   {'turns':>5} {'wall s':>7}")
    print(f"{'':<27} {'p50':>8} {'p99':>8} {'max':>8}   {'p50':>7} {'p99':>7}")
    print(row("model in a worker thread", threaded))
    print(row("model on the event loop", blocking))
    p99 = percentile(threaded["lags"], 99)
    ratio = percentile(blocking["lags"], 99) / max(p99, 1e-6)
    ideal = args.games * args.messages * seconds / args.slots
    print(f"p99 loop lag: {1000 * p99:.1f} ms (goal < 50 ms: {'met' if p99 < 0.05 else 'MISSED'});"
          f" {ratio:.0f}x lower than with the model on the loop")
    print(f"throughput: {args.games * args.messages} turns in {threaded['wall']:.1f} s, "
          f"{ideal / threaded['wall']:.0%} of what {args.slots} slot(s) at {args.turn_ms} ms "
          f"allow")
    return 0 if p99 < 0.05 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--turn-ms", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--slots", type=int, default=4)
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(main(parser.parse_args())))
