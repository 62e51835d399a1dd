"""The Discord bot: a ``commands.Bot`` that owns the database, the agents and their model queues.

Layout (RoboDanny's): ``HaggleBot`` creates its shared resources in ``setup_hook`` (the SQLite
store, the AgentFactory and its model pool, one waiting line per model) and closes them in
``close()``; every feature is an extension in ``bot/cogs/`` ending in ``async def setup(bot)``;
checks live in ``bot/checks.py``; slash commands are synced on demand (``haggle bot --sync`` or
the owner's ``@haggle sync``), never on every start, which Discord rate-limits.

Responsiveness: every command defers within Discord's 3-second window before any slow work;
model calls run in the backends' worker threads (bot/llm), behind the per-model queues; reports
and charts are computed in worker threads. Errors never reach a person as a traceback: the
tree's ``on_error`` answers each failure with a short private message (and logs the unexpected
ones with an id the person can quote).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.bot_config import BotConfig, bot_config
from bot.checks import permission_names
from bot.config import Config
from bot.discord_util import public_error, respond
from bot.errors import HaggleError
from bot.queues import ModelQueues
from bot.ratelimit import RateLimits

if TYPE_CHECKING:
    from bot.agent_factory import AgentFactory
    from bot.store import Store

log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.cogs.games",        # /haggle, game threads, buttons, inactivity timeouts
    "bot.cogs.daily",        # /daily play | standings, the end-of-day ranking
    "bot.cogs.tournaments",  # /tournament run | status | cancel | report
    "bot.cogs.stats",        # /leaderboard, /stats
    "bot.cogs.models",       # /models list | default
    "bot.cogs.admin",        # the owner's @haggle sync
)


STALE_COMMANDS = ("This command changed since it was registered with Discord (the bot was "
                  "upgraded). The bot's owner needs to sync the commands: `@haggle sync` here, "
                  "or `haggle bot --sync` on the bot's machine.")


def explain(error: Exception) -> str | None:
    """What to tell the person about ``error``; None when it is a bug (log it, apologise)."""
    original = getattr(error, "original", None) or error.__cause__ or error
    if isinstance(original, HaggleError):
        return public_error(str(original))  # no file, database or backend paths
    if isinstance(error, (app_commands.CommandSignatureMismatch, app_commands.CommandNotFound)):
        return STALE_COMMANDS
    if isinstance(error, app_commands.TransformerError):
        return f"I couldn't read {error.value!r} for that option; pick one of the suggestions."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: you can use this again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.BotMissingPermissions):
        return (f"I'm missing permissions in this channel: {permission_names(error.missing_permissions)}. "
                f"Ask a server admin to grant them to my role, or use another channel.")
    if isinstance(error, app_commands.MissingPermissions):
        return f"You need {permission_names(error.missing_permissions)} for this."
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You can't use this command here."
    if isinstance(original, discord.Forbidden):
        return ("Discord refused one of my actions here (a missing permission). Ask a server "
                "admin to check my role's permissions in this channel.")
    return None


# Imported at start, in a worker thread: on the event loop, the first game turn on a model or the
# first /tournament run would import them (llama_cpp alone takes most of a second), stalling
# every server's commands meanwhile.
HOT_MODULES = ("bot.tournament", "bot.report", "bot.negotiation.runner", "tqdm")
BACKEND_MODULES = {"llamacpp": "bot.llm.llamacpp", "llamacpp-batched": "bot.llm.batched",
                   "openai": "bot.llm.openai_http"}


def warm_imports(cfg: Config) -> list[str]:
    """Import the modules the bot will need for ``cfg`` (blocking: run it in a thread)."""
    import importlib

    names = [*HOT_MODULES, *sorted({BACKEND_MODULES[s.backend] for s in cfg.models.values()
                                    if s.backend in BACKEND_MODULES})]
    for name in names:
        importlib.import_module(name)
    return names


async def read_model_headers(cfg: Config, models: Iterable[str] | None = None) -> None:
    """Read the GGUF headers (and sha256) of the local models (``models``, default all) that a
    tournament's set-up snapshot records, in a child process (bot.llm.models.inspect_gguf_apart):
    the snapshot then finds them cached instead of parsing vocabularies on the bot's GIL."""
    from bot.llm.models import LOCAL_BACKENDS, inspect_gguf_apart, resolve_model

    for name in sorted(set(cfg.models) if models is None else set(models)):
        spec = cfg.models.get(name)
        if spec is None or spec.backend not in LOCAL_BACKENDS:
            continue
        try:
            await inspect_gguf_apart(resolve_model(spec.path, cfg.base_dir))
        except HaggleError as exc:  # said to the person when the model is used
            log.warning("model %s: %s", spec.name, public_error(str(exc)))


class HaggleTree(app_commands.CommandTree):
    async def on_error(self, interaction: discord.Interaction,
                       error: app_commands.AppCommandError) -> None:
        message = explain(error)
        if message is None:
            incident = secrets.token_hex(3)
            command = (f"/{interaction.command.qualified_name}" if interaction.command else
                       f"button {(getattr(interaction, 'data', None) or {}).get('custom_id', '?')}")
            log.error("%s failed (incident %s)", command, incident,
                      exc_info=getattr(error, "original", error))
            message = (f"Something went wrong on my side (incident `{incident}`, logged). "
                       f"Your games are saved; try again in a moment.")
        try:
            await respond(interaction, message, ephemeral=True)
        except discord.HTTPException as exc:  # the interaction expired: nothing left to answer
            log.warning("could not tell the person about %s: %s", type(error).__name__, exc)


class HaggleBot(commands.Bot):
    """The haggle Discord bot.

    ``backend_factory`` makes a chat backend for a model spec (default: the real llama.cpp /
    HTTP backends); tests and the benchmark pass a fake one. ``store_path`` defaults to the
    config's ``[store] path``.
    """

    def __init__(self, cfg: Config, *, settings: BotConfig | None = None,
                 store_path: str | Path | None = None,
                 backend_factory: Callable[[Any], Any] | None = None,
                 extensions: tuple[str, ...] = EXTENSIONS, **client_options: Any) -> None:
        self.cfg = cfg
        self.settings = settings or bot_config(cfg)
        # The bot never joins voice channels: no warning about voice libraries it does not need.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        intents.message_content = True  # people play by typing in their game thread
        super().__init__(command_prefix=commands.when_mentioned, intents=intents,
                         tree_cls=HaggleTree, help_command=None,
                         owner_ids=set(self.settings.owner_ids) or None,
                         allowed_mentions=discord.AllowedMentions.none(), **client_options)
        self.store_path = Path(store_path) if store_path else cfg.resolve_path(cfg.store.path)
        self.backend_factory = backend_factory
        self.extension_names = extensions
        self.store: Store | None = None  # opened in setup_hook, closed in close
        self.factory: AgentFactory | None = None
        # A batched model (backend "llamacpp-batched") decodes n_slots games together.
        batched = {name: spec.n_slots for name, spec in cfg.models.items()
                   if spec.backend == "llamacpp-batched"}
        self.queues = ModelQueues(slots=self.settings.model_slots,
                                  capacity=self.settings.queue_size, per_model=batched)
        self.rate_limits = RateLimits(self.settings.actions_per_minute)  # per person, bot-wide

    def new_factory(self) -> AgentFactory:
        """The bot's AgentFactory: its model pool holds at most ``max_model_instances``
        llama.cpp instances, for games and tournaments together."""
        from bot.agent_factory import AgentFactory
        from bot.llm.pool import ModelPool, make_backend

        pool = ModelPool(self.cfg.models, factory=self.backend_factory or make_backend,
                         max_instances=self.settings.max_model_instances)
        return AgentFactory(self.cfg, pool=pool)

    def tournament_factory(self) -> AgentFactory:
        """An AgentFactory for a /tournament run: no instances of its own, every model call on
        one of the bot's model slots, behind the games waiting for it (bot/model_slots.py);
        closing it closes nothing shared."""
        from bot.agent_factory import AgentFactory
        from bot.model_slots import ModelSlots

        return AgentFactory(self.cfg, pool=ModelSlots(self.queues, self.factory.pool).tournament_pool())

    async def setup_hook(self) -> None:
        from bot.store import Store

        await asyncio.to_thread(warm_imports, self.cfg)
        self.store = await Store.open(self.store_path)
        self.factory = self.new_factory()
        await self.load_features()
        log.info("haggle bot ready to connect: database %s, %d extensions", self.store_path,
                 len(self.extension_names))

    async def load_features(self) -> None:
        for name in self.extension_names:
            await self.load_extension(name)

    async def close(self) -> None:
        try:
            await super().close()  # unloads the extensions: cogs stop their tasks first
        finally:
            if self.factory is not None:
                await self.factory.aclose()
                self.factory = None
            if self.store is not None:
                await self.store.close()
                self.store = None

    async def on_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:
        """Prefix commands (the owner's sync): people who mention the bot in passing and
        non-owners get silence, owners get the reason."""
        if isinstance(error, (commands.CommandNotFound, commands.NotOwner)):
            return
        log.warning("@%s %s failed: %s", self.user, ctx.command, error)
        await ctx.reply(f"That failed: {error}", mention_author=False)


# --------------------------------------------------------------------------- command manifest


def _option(option: dict[str, Any]) -> dict[str, Any]:
    kind = discord.AppCommandOptionType(option["type"]).name
    out: dict[str, Any] = {"name": option["name"], "description": option.get("description", ""),
                           "type": kind}
    if kind in ("subcommand", "subcommand_group"):
        out["options"] = [_option(o) for o in option.get("options", [])]
        return out
    out["required"] = bool(option.get("required", False))
    if option.get("choices"):
        out["choices"] = [c["value"] for c in option["choices"]]
    if option.get("autocomplete"):
        out["autocomplete"] = True
    for key in ("min_value", "max_value", "min_length", "max_length"):
        if key in option:
            out[key] = option[key]
    return out


def command_manifest(tree: app_commands.CommandTree) -> list[dict[str, Any]]:
    """The slash commands the tree would register: name, description, options (recursively)."""
    out = []
    for command in sorted(tree.get_commands(), key=lambda c: c.name):
        payload = command.to_dict(tree)
        entry = {"name": payload["name"], "description": payload.get("description", ""),
                 "options": [_option(o) for o in payload.get("options", [])]}
        entry["guild_only"] = not payload.get("dm_permission", True)
        out.append(entry)
    return out


class ShardedHaggleBot(HaggleBot, commands.AutoShardedBot):
    """The haggle bot on several gateway connections (discord.py's AutoShardedBot): one
    process, each shard carrying its share of the servers (Discord requires shards past
    2,500 servers). Everything else is HaggleBot's."""


def make_bot(cfg: Config, *, settings: BotConfig | None = None, **kwargs: Any) -> HaggleBot:
    """The bot ``[bot] shards`` asks for: 0, one gateway connection (HaggleBot); N > 0, an
    AutoShardedBot with N shards; -1, as many shards as Discord recommends."""
    settings = settings or bot_config(cfg)
    if settings.shards == 0:
        return HaggleBot(cfg, settings=settings, **kwargs)
    count = None if settings.shards < 0 else settings.shards
    return ShardedHaggleBot(cfg, settings=settings, shard_count=count, **kwargs)
