"""The Discord bot under load, faults and abuse: a soak through the loopback Discord.

The loopback Discord (tests/loopback_discord/, the unmodified discord.py client talks to it)
runs here with ``--servers`` servers and ``--players`` simulated people
(bench/_soak_players.py) who play /haggle games at once for ``--minutes``: ordinary offers,
hostile lines, button mashing, "deal" and "bye" typed behind an offer still in line, and
``/tournament run`` started in every server at once (twice). The bot is the real HaggleBot in
a process of its own (bench/_soak_bot.py) on one SQLite file; ``--kills`` times, at random
moments, it is killed with SIGKILL and started again on the same database (one downtime
outlasts ``inactivity_timeout_s``, so downtime charged to players would show).

Printed (bench/_soak_audit.py): bot moves lost or duplicated (the database against the game
threads), result cards saved but never posted, stuck games, timeouts of games that lived
through a restart, llama.cpp instances alive (max, against ``max_model_instances``), p99
event-loop lag of the bot outside restarts, peak RSS, every refusal that reached a player and
why, and the absolute paths, URLs and other servers' ids found in anything a person received.

    .venv/bin/python bench/bot_soak.py                                  # 10 min, 50 players, 5 servers, 4 kills
    .venv/bin/python bench/bot_soak.py --minutes 1 --players 10 --servers 2 --kills 1   # smoke

The bot's LLM agents (``--llm-share`` of the games, and the tournaments' seller) run on the
embedded SmolLM2-135M through llama.cpp, one thread per instance; the other games face rule
agents. ``--rule-only`` plays every game against rule agents (no model).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._soak_audit import Leaks, audit_games, message_text, percentile  # noqa: E402
from bench._soak_players import Soak, player, tournaments  # noqa: E402

INACTIVITY_S = 60.0
LLM_AGENT = {"kind": "llm", "model": "smol", "policy": "hybrid", "personality": "fair",
             "max_tokens": 48, "max_repairs": 0, "seed": 0}
AGENTS = {
    "rule-seller": {"kind": "rule", "role": "seller", "seed": 1},
    "rule-buyer": {"kind": "rule", "role": "buyer", "seed": 1},
    "llm-seller": {**LLM_AGENT, "role": "seller"},
    "llm-buyer": {**LLM_AGENT, "role": "buyer"},
}


def soak_config(args: argparse.Namespace) -> dict[str, Any]:
    agents = dict(AGENTS)
    if args.rule_only:
        agents["llm-seller"] = {"kind": "rule", "role": "seller", "seed": 2}
        agents["llm-buyer"] = {"kind": "rule", "role": "buyer", "seed": 2}
    return {
        "agents": agents,
        "models": {"smol": {"path": "embedded", "n_ctx": 2048, "n_threads": 1}},
        "bot": {"inactivity_timeout_s": INACTIVITY_S, "model_slots": args.slots,
                "max_model_instances": args.cap, "queue_size": 8, "haggle_cooldown_s": 5.0,
                "command_cooldown_s": 2.0, "actions_per_minute": 30,
                "max_running_tournaments": 2, "max_tournament_workers": 2,
                "max_tournament_negotiations": 10, "owner_ids": [1]},
    }


class BotProcess:
    """The bot in its own process; killed with SIGKILL, started again on the same files."""

    def __init__(self, args: argparse.Namespace, discord: Any, work: Path) -> None:
        self.args, self.discord, self.work = args, discord, work
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.stats_files: list[Path] = []

    async def start(self, *, sync: bool = False) -> float:
        self.starts += 1
        stats = self.work / f"stats-{self.starts}.jsonl"
        self.stats_files.append(stats)
        log = open(self.work / f"bot-{self.starts}.log", "wb")  # noqa: SIM115 - the child's
        argv = [sys.executable, str(ROOT / "bench" / "_soak_bot.py"),
                "--api", self.discord.api_base, "--gateway", self.discord.gateway_url,
                "--token", self.discord.token, "--db", str(self.work / "haggle.db"),
                "--config", str(self.work / "config.json"), "--stats", str(stats)]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        t = time.monotonic()
        argv += ["--sync"] if sync else []
        argv += ["--stall-dumps"] if self.args.stall_dumps else []
        self.proc = await asyncio.create_subprocess_exec(*argv,
                                                         stdout=log, stderr=log, env=env)
        log.close()
        while not any(line.get("ready") for line in read_stats(stats)):
            if self.proc.returncode is not None:
                raise RuntimeError(f"the bot exited ({self.proc.returncode}); see "
                                   f"{self.work / f'bot-{self.starts}.log'}")
            await asyncio.sleep(0.2)
        if sync:
            while not self.discord.global_commands:
                await asyncio.sleep(0.2)
        return time.monotonic() - t

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        for session in self.discord.gateway.sessions.values():
            session.valid = False  # that process is gone: its session will never RESUME

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def read_stats(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def kill_plan(rng: random.Random, kills: int, seconds: float) -> list[tuple[float, float]]:
    """(when, downtime) of each kill: random moments in the middle 80 % of the run; the second
    downtime (the only one when there is one kill and the run is long) outlasts the
    inactivity timeout."""
    if kills <= 0:
        return []
    span = (0.1 * seconds, 0.85 * seconds)
    slots = [span[0] + (span[1] - span[0]) * (k + rng.uniform(0.15, 0.85)) / kills
             for k in range(kills)]
    long_one = 1 if kills >= 2 else (0 if seconds >= 300 else -1)
    return [(at, INACTIVITY_S + rng.uniform(8, 15) if k == long_one else rng.uniform(2, 10))
            for k, at in enumerate(slots)]


async def soak(args: argparse.Namespace) -> int:
    from tests.loopback_discord.server import LoopbackDiscord

    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="haggle-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.json").write_text(json.dumps(soak_config(args)), encoding="utf-8")
    spec = args.spec if args.spec and Path(args.spec).exists() else None
    discord = await LoopbackDiscord(spec_path=spec).start()
    secrets = [str(work), str(ROOT), f"127.0.0.1:{discord.port}"]
    if not args.rule_only:
        from bot.llm.models import embedded_model_path

        secrets += [str(embedded_model_path()), str(embedded_model_path().parent)]
    leaks = Leaks(discord, secrets)
    discord.observers.append(leaks.observe)
    managers, people = [], []
    for s in range(args.servers):
        owner = discord.add_user(f"owner{s}")
        guild = discord.add_guild(f"Soak server {s}", owner=owner)
        general = discord.add_channel(guild, "general")
        managers.append((owner, general))
    for p in range(args.players):
        _, general = managers[p % args.servers]
        guild = discord.guild_of(general)
        people.append((discord.add_member(guild, discord.add_user(f"player{p}")), general))
    bot = BotProcess(args, discord, work)
    print(f"soak: work folder {work.name}, loopback Discord up; starting the bot", flush=True)
    first_start = await bot.start(sync=True)
    stopping = asyncio.Event()
    state = Soak(discord, discord_driver(discord), rng, 0.0 if args.rule_only else args.llm_share,
                 stopping)
    loop = asyncio.get_running_loop()
    seconds = args.minutes * 60
    t0 = loop.time()
    plan = kill_plan(rng, args.kills, seconds)
    downtimes: list[float] = []
    restart_s: list[float] = [first_start]
    tasks = [asyncio.create_task(player(state, user, general, args.seed * 1000 + k))
             for k, (user, general) in enumerate(people)]
    runs = asyncio.create_task(tournaments(state, managers, [0.15 * seconds, 0.45 * seconds, 0.7 * seconds], t0,
                                           "rule-buyer, llm-seller"))

    async def killer() -> None:
        for at, down in plan:
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            await bot.kill()
            print(f"  {loop.time() - t0:6.1f} s: bot killed (SIGKILL); down {down:.1f} s",
                  flush=True)
            t = loop.time()
            await asyncio.sleep(down)
            restart_s.append(await bot.start())
            downtimes.append(loop.time() - t)

    kill_task = asyncio.create_task(killer())
    await asyncio.sleep(max(0.0, t0 + seconds - loop.time()))
    await kill_task  # a restart under way finishes first
    stopping.set()
    await asyncio.wait(tasks, timeout=30)
    for task in tasks:
        task.cancel()
    started = await runs
    stopped_at = datetime.now(UTC).isoformat(timespec="seconds")
    # The players are gone: 10 s for the bot to answer what is in line, then the games still
    # owing a move are poked (<= 30 s), then the bot stops: all well inside the 60 s after
    # which the sweep ends the players' abandoned games.
    await asyncio.sleep(10)
    owing = audit_games(str(work / "haggle.db"), discord).owing
    stuck = await poke(state, owing)  # a game owing a move must answer its player
    await bot.stop()  # SIGTERM: turns under way finish, are saved and posted, then it exits
    audit = audit_games(str(work / "haggle.db"), discord, stopped_at=stopped_at)
    audit.stuck, audit.owing = len(stuck), owing
    audit.examples[:0] = [f"game {g}: owed a move and did not answer its player" for g in stuck]
    await discord.stop()
    report(args, work, discord, state, leaks, audit, bot, plan, downtimes, restart_s, started)
    return 0


async def poke(state: Soak, owing: list[tuple[int, int, int]]) -> list[int]:
    """Each game that owes a move at the end: its player writes again (people do); the games
    whose thread shows nothing new from the bot within 30 s are stuck."""
    async def one(game_id: int, thread_id: int, player_id: int) -> int | None:
        thread = state.discord.channels.get(thread_id)
        user = state.discord.users.get(player_id)
        if thread is None or user is None:
            return game_id
        before = len(state.public_bot_messages(thread))
        await state.drive.say(user, thread, "hello? are you still there?")
        for _ in range(120):
            if len(state.public_bot_messages(thread)) > before:
                return None
            await asyncio.sleep(0.25)
        return game_id

    answers = await asyncio.gather(*(one(*g) for g in owing))
    return [g for g in answers if g is not None]


def discord_driver(discord: Any) -> Any:
    from tests.loopback_discord.driver import Driver

    return Driver(discord)


def report(args: argparse.Namespace, work: Path, discord: Any, state: Soak, leaks: Leaks,
           audit: Any, bot: BotProcess, plan: list[tuple[float, float]], downtimes: list[float],
           restart_s: list[float], started: list[Any]) -> None:
    stats = [line for path in bot.stats_files for line in read_stats(path)]
    lags = [x for line in stats for x in line.get("lags", [])]
    peak_alive = max((line["alive"] for line in stats), default=0)
    pool_peak = max((line["pool_peak"] for line in stats), default=0)
    made = sum(max((line["made"] for line in read_stats(p)), default=0) for p in bot.stats_files)
    refused_cap = sum(max((line["pool_refused"] for line in read_stats(p)), default=0)
                      for p in bot.stats_files)
    peak_rss = max((line["peak_rss_kb"] for line in stats), default=0)
    tally = state.tally
    texts = ["\n".join(message_text(m) for m in ix.replies) for ix in started]
    t_started = sum("Tournament started" in t for t in texts)
    errors = sum(open(p, "rb").read().count(b" ERROR ") for p in work.glob("bot-*.log"))
    codes: dict[int, int] = {}
    for refusal in discord.errors:
        codes[refusal.code] = codes.get(refusal.code, 0) + 1
    agents = ("every game and tournament on rule agents (--rule-only)" if args.rule_only else
              f"LLM agents (hybrid policy, embedded SmolLM2-135M via llama.cpp, 1 thread per "
              f"instance) in {args.llm_share:.0%} of the games and as the tournaments' seller; "
              f"rule agents in the rest")
    print()
    print(f"haggle bot soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.minutes:g} min, "
          f"{args.players} players in {args.servers} servers, {len(plan)} SIGKILL + restart "
          f"cycle(s) on one database, seed {args.seed}")
    print(f"command: {' '.join(['bench/bot_soak.py', *sys.argv[1:]])}")
    print(f"agents: {agents}")
    print(f"players: {tally.games_started} games started, {tally.games_ended} ended, "
          f"{tally.moves} moves ({tally.hostile} hostile lines, {tally.mashes} button mashes, "
          f"{tally.deal_bye_mid_queue} deal/bye behind an offer in line); {tally.no_answer} "
          f"moves or commands unanswered within 15-20 s (bot down or busy); "
          f"{tally.haggle_refused} /haggle without a game")
    print(f"exchanges: {audit.moves_saved} bot moves saved, {audit.moves_posted} posted; "
          f"lost (saved, never posted) {audit.lost}, duplicated {audit.duplicated}; result "
          f"cards saved but never posted {audit.cards_unposted}")
    print(f"stuck games: {audit.stuck} ({len(audit.owing)} owed a move when the players stopped, "
          f"each poked by its player; of {audit.games} games: {audit.finished} finished, "
          f"{audit.active} still running at the end, {audit.lived_through_restart} lived "
          f"through a restart)")
    print(f"timeouts while the players played: {audit.timeouts}, {audit.timeouts_after_restart} "
          f"of them games that lived through a restart (downtimes "
          f"{', '.join(f'{d:.1f} s' for d in downtimes)}; inactivity_timeout_s {INACTIVITY_S:g}; "
          f"players never idle that long); {audit.timeouts_after_stop} after the players stopped")
    print(f"outcomes: {dict(audit.outcomes)}")
    print(f"llama.cpp instances alive: max {peak_alive} (cap max_model_instances = {args.cap}; "
          f"the bot's own count: max {pool_peak}); {made} made over {bot.starts} processes, "
          f"{refused_cap} refused at the cap")
    print(f"event-loop lag of the bot, outside restarts: p50 {percentile(lags, 50) * 1e3:.1f} "
          f"ms, p99 {percentile(lags, 99) * 1e3:.1f} ms, max {max(lags, default=0) * 1e3:.1f} ms "
          f"over {len(lags)} samples; restarts took "
          f"{', '.join(f'{s:.1f}' for s in restart_s)} s to READY")
    print(f"peak RSS: bot {peak_rss / 1024:.0f} MiB (max over {bot.starts} processes), "
          f"bench + loopback {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    answers: dict[str, int] = {}
    for t in texts:
        said = ("started" if "Tournament started" in t else
                (t.splitlines() or ["(no answer: the bot was down or killed meanwhile)"])[0][:90])
        answers[said] = answers.get(said, 0) + 1
    print(f"tournaments: {len(started)} /tournament run, {t_started} started; answers: {answers}; "
          f"in the database: {audit.tournaments} tournaments ({audit.tournaments_finished} "
          f"finished), {audit.negotiations} negotiations stored, {audit.negotiation_errors} "
          f"ended as errors")
    for channel in discord.channels.values():
        if (channel.name or "").startswith("Tournament") and channel.messages:
            last = (channel.messages[-1].get("content") or "").strip().splitlines() or [""]
            print(f"  thread {channel.name[:60]!r}: {len(channel.messages)} messages, last: "
                  f"{last[-1][:100]!r}")
    print(f"refusals that reached players: {sum(leaks.refusals.values())}")
    for kind, n in leaks.refusals.most_common():
        print(f"  {n:6d}  {kind}: \"{leaks.refusal_examples[kind][:110]}\"")
    print(f"leaks over {leaks.messages} messages and edits shown ({leaks.private} private): "
          f"absolute paths {len(leaks.paths)}, URLs (backend or other) {len(leaks.urls)}, "
          f"other servers' ids {len(leaks.other_servers)}")
    for sample in (leaks.paths + leaks.urls + leaks.other_servers)[:5]:
        print(f"    e.g. {sample[:150]!r}")
    print(f"loopback Discord: {len(discord.requests)} requests, refusals by code {codes}, "
          f"{len(discord.schema_problems)} schema problems, "
          f"{len(discord.private_shown_publicly)} private replies shown publicly"
          + ("" if args.spec and Path(args.spec).exists() else " (no OpenAPI file: bodies unchecked)"))
    print(f"bot log: {errors} ERROR lines (incidents); player-side errors: {len(tally.errors)}")
    for line in tally.errors[:5] + audit.examples[:8]:
        print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--servers", type=int, default=5)
    parser.add_argument("--kills", type=int, default=4, help="SIGKILL + restart cycles")
    parser.add_argument("--llm-share", type=float, default=0.2,
                        help="share of games against an LLM agent (the embedded model)")
    parser.add_argument("--rule-only", action="store_true", help="no model: rule agents only")
    parser.add_argument("--slots", type=int, default=2, help="[bot] model_slots")
    parser.add_argument("--cap", type=int, default=2, help="[bot] max_model_instances")
    parser.add_argument("--seed", type=int, default=1)
    data = Path(os.environ.get("HAGGLE_TEST_DATA") or ROOT / ".." / "shared" / "data")
    parser.add_argument("--spec", default=str(data / "discord-api-spec" / "openapi.json"),
                        help="Discord's OpenAPI description (request bodies are validated)")
    parser.add_argument("--workdir", default=None, help="where the database and logs go")
    parser.add_argument("--stall-dumps", action="store_true",
                        help="the bot logs every thread's stack when its loop stalls past 0.3 s")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    raise SystemExit(main())
