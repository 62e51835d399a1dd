"""The owner's commands, typed as a mention: ``@haggle sync`` (RoboDanny's ``?sync``).

Slash commands are registered with Discord on demand, not at every start (Discord rate-limits
syncing and a start should not change what servers see). ``@haggle sync`` copies the global
commands to this server and syncs them there (instant, good for trying changes);
``@haggle sync global`` syncs everywhere (can take up to an hour to show);
``@haggle sync clear`` removes this server's copies. Only the owners (``[bot] owner_ids``,
default: the application's owner) may use it; anyone else gets silence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from discord.ext import commands

if TYPE_CHECKING:
    from bot.app import HaggleBot


class Admin(commands.Cog):
    """Owner-only maintenance."""

    def __init__(self, bot: HaggleBot) -> None:
        self.bot = bot

    @commands.command(name="sync")
    @commands.is_owner()
    async def sync(self, ctx: commands.Context,
                   scope: Literal["here", "global", "clear"] = "here") -> None:
        tree = self.bot.tree
        if scope == "global":
            synced = await tree.sync()
            where = "globally (may take up to an hour to show everywhere)"
        elif ctx.guild is None:
            await ctx.reply("In a DM only `@haggle sync global` makes sense.", mention_author=False)
            return
        elif scope == "clear":
            tree.clear_commands(guild=ctx.guild)
            synced = await tree.sync(guild=ctx.guild)
            where = "here (server copies removed)"
        else:
            tree.copy_global_to(guild=ctx.guild)
            synced = await tree.sync(guild=ctx.guild)
            where = "to this server"
        names = ", ".join(f"/{c.name}" for c in synced) or "none"
        await ctx.reply(f"Synced {len(synced)} command(s) {where}: {names}.", mention_author=False)


async def setup(bot: HaggleBot) -> None:
    await bot.add_cog(Admin(bot))
