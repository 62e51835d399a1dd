"""/haggle: a person haggles with an agent in a thread of their own (or in a DM).

The person types offers as ordinary messages; the agent answers in character. Buttons: Accept
(the bot's current offer), Walk away, Status. A game ends on a deal, a walk-away, the turn cap
or the inactivity timeout; the result card then reveals the bot's limit, drawn for this game.

Why it is built this way:

- The database is the source of truth. Every exchange is saved before the bot's answer is
  posted; after a restart, a game is reloaded from its saved state on its first message or
  button click. The buttons are discord.py dynamic items whose custom ids carry the game id
  (``haggle:game:accept:42``), registered when the extension loads, so buttons posted before a
  restart keep working.
- The agent is never called outside the model queue: between turns a game holds a stand-in
  that refuses to answer, and each turn builds the real agent on the model slot the queue
  granted (one llama.cpp instance per slot, shared by the games in turn).
- One turn at a time per game (a lock), one running game per person per server; bad input
  gets a one-line reply, an agent failure takes the person's move back.

The game in memory, its stand-in agent, its buttons and its thread: bot/cogs/_live.py.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks
from bot.cogs._cards import button_turn_text, intro_embed, result_card, status_embed, turn_text
from bot.cogs._endings import GameEndings
from bot.cogs._items import ScenarioSets
from bot.cogs._live import GameButton, LiveGame, Unseated, game_controls, make_place
from bot.discord_util import (
    CHOICE_NAME_LIMIT,
    MAX_CHOICES,
    clip,
    defer,
    plain_text,
    public_error,
    quietly,
    respond,
)
from bot.errors import DataError, HaggleError, StoreError, TurnError
from bot.negotiation.personality import PERSONALITIES, RULE_CONCESSION_FACTOR
from bot.negotiation.prompts import money
from bot.negotiation.scenario import Scenario, draw_private_limit
from bot.negotiation.session import Exchange, HumanGame
from bot.negotiation.turns import Act, Outcome, Role
from bot.ratelimit import slow_down

if TYPE_CHECKING:
    from bot.app import HaggleBot
    from bot.negotiation.agents import Agent

log = logging.getLogger(__name__)

PERSONALITY_CHOICES = [app_commands.Choice(name=p, value=p) for p in PERSONALITIES]
class Games(GameEndings, commands.Cog):
    """Games people play against the bot (how they end without a move: bot/cogs/_endings.py)."""

    def __init__(self, bot: HaggleBot) -> None:
        self.bot = bot
        self.live: dict[int, LiveGame] = {}   # game id -> game in memory
        self.places: dict[int, int] = {}      # thread / DM channel id -> its running game id
        self._opening: set[tuple[int | None, int]] = set()  # (server, person) starting a game
        self._marks: set[asyncio.Task[None]] = set()  # posted-marks being written (_endings.py)
        self.seen: dict[int, datetime] = {}  # game id -> its player's last message, played or not
        self.items = ScenarioSets(bot.cfg)

    async def cog_load(self) -> None:
        self.items.start(self.bot.settings.scenario_set)  # autocomplete must answer within 3 s
        self.started_at = datetime.now(UTC)
        for row in await self.bot.store.active_games():
            self.places[row.thread_id or row.channel_id] = row.id
            await self._note_restart(row)
        self.sweeper.change_interval(seconds=max(10.0, self.bot.settings.inactivity_timeout_s / 10))
        self.sweeper.start()

    async def cog_unload(self) -> None:
        self.sweeper.cancel()
        self.items.cancel()
        await self._drain()

    # ----------------------------------------------------------------- lookups

    async def scenarios(self, name: str) -> list[Scenario]:
        """A scenario set, read once (bot/cogs/_items.py)."""
        return await self.items.get(name)

    async def default_agent(self, guild_id: int | None, bot_role: Role) -> str:
        """The server's default agent when it can sit in ``bot_role``, else the config's."""
        if guild_id is not None:
            chosen = (await self.bot.store.guild_settings(guild_id)).default_agent
            if chosen in self.bot.cfg.agents and bot_role.value in self.bot.cfg.agents[chosen].roles:
                return chosen
        return self.bot.cfg.default_agent(bot_role)

    async def max_turns(self, guild_id: int | None) -> int:
        if guild_id is not None:
            turns = (await self.bot.store.guild_settings(guild_id)).max_turns
            if turns:
                return turns
        return self.bot.cfg.negotiation.max_turns

    def build_agent(self, live: LiveGame, seat: str | None, waited: float = 0.0) -> Agent:
        """The game's agent for one turn, on the model slot ``seat`` (None for rule agents),
        with what is left of the bot's reply budget after ``waited`` seconds in line."""
        cfg = self.bot.cfg
        spec = cfg.agent(live.agent_name)
        factory = self.bot.factory
        if live.personality and live.personality != spec.personality:
            if spec.kind == "rule":
                concession = min(1.0, spec.concession * RULE_CONCESSION_FACTOR[live.personality])
                spec = replace(spec, personality=live.personality, concession=concession)
            else:
                spec = replace(spec, personality=live.personality)
            from bot.agent_factory import AgentFactory

            factory = AgentFactory(replace(cfg, agents={**cfg.agents, spec.name: spec}),
                                   pool=self.bot.factory.pool)
        budget = self.bot.settings.reply_budget_s
        return factory.build(live.agent_name, live.human_role.other, seed=live.seed, seat=seat,
                             reply_budget_s=max(0.0, budget - waited) if budget else None)

    async def load(self, game_id: int) -> LiveGame | None:
        """The running game ``game_id``, from memory or rebuilt from the database."""
        live = self.live.get(game_id)
        if live is not None:
            return live
        row = await self.bot.store.game(game_id)
        if row is None or row.status != "active":
            self.places = {k: v for k, v in self.places.items() if v != game_id}
            return None
        live = self.live.setdefault(game_id, self.from_row(row))  # another task may have loaded it meanwhile
        self.places[live.place_id] = game_id
        return live

    async def place_of(self, live: LiveGame) -> Any:
        """The game's thread (or DM channel), or None when it is gone."""
        if live.place is None:
            live.place = self.bot.get_channel(live.place_id)
        if live.place is None:
            try:
                live.place = await self.bot.fetch_channel(live.place_id)
            except (discord.NotFound, discord.Forbidden):
                return None
        return live.place

    # ----------------------------------------------------------------- /haggle

    @app_commands.command(name="haggle", description="Haggle with the bot over an item, in a "
                                                     "thread of your own")
    @app_commands.describe(role="Your side of the deal (default: you buy, the bot sells)",
                           item="What to haggle over (default: a random item)",
                           agent="Which bot agent to face (default: this server's)",
                           personality="The bot's temperament (default: the agent's own)")
    @app_commands.choices(role=[app_commands.Choice(name="buyer: you buy from the bot", value="buyer"),
                                app_commands.Choice(name="seller: you sell to the bot", value="seller")],
                          personality=PERSONALITY_CHOICES)
    @checks.bot_permissions(*checks.GAME_PERMISSIONS)
    @checks.per_person_cooldown("haggle_cooldown_s")
    async def haggle(self, interaction: discord.Interaction, role: str = "buyer",
                     item: str = "random", agent: str | None = None,
                     personality: str | None = None) -> None:
        await defer(interaction, ephemeral=True)
        human_role = Role.parse(role)
        seed = secrets.randbelow(2**31)
        scenarios = await self.scenarios(self.bot.settings.scenario_set)
        from bot.scenarios import pick_scenario

        try:
            scenario = pick_scenario(scenarios, item, seed)
            # the bot's limit, private to this game: drawn here, revealed on the result card
            scenario = draw_private_limit(scenario, human_role.other, seed=seed,
                                          spread=self.bot.cfg.negotiation.reservation_spread)
        except DataError:
            await respond(interaction, f"No item matches {clip(item, 80)!r}: pick one from the "
                                       f"list, or leave it empty for a random one.")
            return
        if agent:
            if agent not in self.bot.cfg.agents:
                await respond(interaction, f"There is no agent called {clip(agent, 80)!r} here; "
                                           f"pick one from the list (or see /models list).")
                return
            self.bot.factory.check_seat(self.bot.cfg.agent(agent), human_role.other)
            agent_name = agent
        else:
            agent_name = await self.default_agent(interaction.guild_id, human_role.other)
        await self.open_game(interaction, scenario=scenario, human_role=human_role,
                             agent_name=agent_name, seed=seed, personality=personality)

    @haggle.autocomplete("item")
    async def _item_choices(self, interaction: discord.Interaction,
                            current: str) -> list[app_commands.Choice[str]]:
        return await self.items.item_choices(self.bot.settings.scenario_set, current)

    @haggle.autocomplete("agent")
    async def _agent_choices(self, interaction: discord.Interaction,
                             current: str) -> list[app_commands.Choice[str]]:
        role = getattr(interaction.namespace, "role", None) or "buyer"
        bot_seat = Role.parse(role).other.value
        return [app_commands.Choice(name=clip(f"{a.name} ({a.kind}, {a.personality})",
                                              CHOICE_NAME_LIMIT), value=a.name)
                for a in self.bot.cfg.agents.values()
                if bot_seat in a.roles and current.lower() in a.name.lower()][:MAX_CHOICES]

    async def open_game(self, interaction: discord.Interaction, *, scenario: Scenario,
                        human_role: Role, agent_name: str, seed: int,
                        personality: str | None = None, daily: str | None = None) -> int | None:
        """Open a game thread (a DM game outside servers), save the game, post its card.

        ``interaction`` must be deferred already. Returns the game id, or None when the person
        was told why not (a game already running, no thread possible here).
        """
        user, guild_id = interaction.user, interaction.guild_id
        key = (guild_id, user.id)
        if key in self._opening:
            await respond(interaction, "Your game is being set up; one moment.")
            return None
        self._opening.add(key)
        try:
            running = await self.bot.store.active_game_of(user.id, guild_id)
            unsaved = self.live.get(running.id) if running is not None else None
            if unsaved is not None and unsaved.game.done:  # over; only its final save failed
                async with unsaved.lock:
                    if await self._finish_unsaved(unsaved):
                        running = None
            if running is not None:
                where = f"<#{running.thread_id or running.channel_id}>"
                await respond(interaction, f"You already have a game running in {where}. Finish "
                                           f"it (or press **Walk away** there) first.")
                return None
            place = await make_place(interaction, scenario, user)
            if place is None:
                return None
            game = HumanGame(scenario, Unseated(agent_name), human_role=human_role,
                             human_name=user.display_name,
                             max_turns=await self.max_turns(guild_id),
                             first_mover=self.bot.cfg.negotiation.first_mover,
                             turn_timeout=self.bot.cfg.negotiation.turn_timeout_s)
            in_thread = place.id != interaction.channel_id
            live = LiveGame(id=0, player_id=user.id, player_name=user.display_name,
                            guild_id=guild_id,
                            channel_id=getattr(place, "parent_id", None) or place.id,
                            thread_id=place.id if in_thread else None, agent_name=agent_name,
                            seed=seed, personality=personality, daily=daily,
                            intro_message_id=None, game=game, place=place)
            try:
                live.id = await self.bot.store.create_game(
                    player_id=user.id, player_name=user.display_name,
                    channel_id=live.channel_id, thread_id=live.thread_id, guild_id=guild_id,
                    scenario=scenario.to_dict(), agent=agent_name, human_role=human_role.value,
                    state=live.state())
                if daily is not None:
                    try:
                        await self.bot.store.mark_daily(live.id, daily)
                    except StoreError:  # played it already (a race): this game never started
                        game.abandon(Outcome.ABANDONED, "a second attempt at the daily challenge")
                        await self._save(live)
                        raise
            except StoreError:
                if in_thread:
                    await quietly(place.delete())
                raise
            self.live[live.id] = live
            self.places[live.place_id] = live.id
            try:
                intro = await place.send(
                    content=f"{user.mention}, your game is on.",
                    embed=intro_embed(scenario, human_role=human_role, player=user.display_name,
                                      agent=agent_name, max_turns=game.negotiation.max_turns,
                                      personality=personality, daily=daily),
                    view=game_controls(live.id),
                    allowed_mentions=discord.AllowedMentions(users=[user]))
            except discord.HTTPException as exc:  # e.g. no permission to post in threads
                log.warning("game %s: cannot post its opening card: %s", live.id, exc)
                await self._end(live, Outcome.ABANDONED, "its opening card could not be posted",
                                place=None)
                if in_thread:
                    await quietly(place.delete())
                await respond(interaction, "I couldn't post in the game's thread: give my role "
                                           "**Send Messages in Threads** and **Embed Links** "
                                           "here, or use another channel.")
                return None
            live.intro_message_id = intro.id
            await self.bot.store.update_game(live.id, state=live.state())
        finally:
            self._opening.discard(key)
        await respond(interaction, f"Your game is ready: {place.mention}" if in_thread
                      else "Your game is on, right here.")
        if not self._persons_turn(live.game):
            async with live.lock:
                await self._agent_opens(live, place)
        return live.id

    # ----------------------------------------------------------------- messages

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        game_id = self.places.get(message.channel.id)
        if game_id is None:
            return
        limits = self.bot.rate_limits
        wait = limits.hit(message.author.id)
        if wait is not None:  # said once a minute, the notice gone after a while
            self.seen[game_id] = datetime.now(UTC)  # not played, but the person is here
            if limits.first_refusal(message.author.id):
                await quietly(message.reply(slow_down(wait, limits.per_minute),
                                            mention_author=False, delete_after=20))
            return
        try:
            await self.handle_message(game_id, message)
        except Exception as exc:  # the listener must survive anything a message causes
            incident = secrets.token_hex(3)
            log.error("game %s: message %s failed (incident %s)", game_id, message.id, incident,
                      exc_info=exc)
            reason = (public_error(str(exc)) if isinstance(exc, HaggleError)
                      else f"incident `{incident}`, logged")
            await quietly(message.reply(f"Something went wrong on my side ({reason}). Your game "
                                         f"is saved; send that again in a moment.",
                                         mention_author=False))

    async def handle_message(self, game_id: int, message: discord.Message) -> None:
        live = await self.load(game_id)
        if live is None or message.author.id != live.player_id:
            return  # a finished game, or someone else talking in the thread: not a move
        live.place = message.channel
        # the person is here even if this message is refused (model line full, one at a time,
        # too long): only the person's silence may end the game (the soak's timeouts, #17)
        self.seen[game_id] = datetime.now(UTC)

        async def reply(text: str) -> None:
            await quietly(message.reply(text, mention_author=False))

        text = plain_text(message.content)
        if not text:
            await reply("I only read text: make an offer or ask me something.")
            return
        limit = self.bot.settings.max_message_chars
        if len(text) > limit:
            await reply(f"That's {len(text):,} characters; keep it under {limit:,}. Just name your "
                        f"price or ask a question.")
            return
        seen = live.game.agent_offer  # the offer a typed "deal" means
        if live.lock.locked():
            if live.game.ending_move(text) is None:
                await reply("Still answering your last message: one at a time, please.")
                return
            self._withdraw(live)  # "deal" / "bye": a message still in line gives its place up
        async with live.lock:
            game = live.game
            if game.done:
                if live.unsaved:  # over, but its final save failed: try again now
                    await self._finish_unsaved(live)
                return
            ending = game.ending_move(text)
            if ending is not None:  # a deal or a walk-away needs no model call: no queue
                if ending.act is Act.ACCEPT and game.agent_offer != seen:
                    await reply(f"My offer changed while you typed: it's "
                                f"{money(game.agent_offer)} now. "
                                f"Say deal again to take it.")
                    return
                await self._person_ends(live, text, message.channel)
                return
            if not self._persons_turn(game):  # the bot owes a move (it opens, or failed before)
                await self._agent_opens(live, message.channel)
                if game.done or not self._persons_turn(game):
                    return
            try:  # the core's rules: no move found, nothing to accept, an absurd price
                game.interpret(text)
            except TurnError as exc:
                await self._touch(live)
                await reply(str(exc))
                return
            before = game.to_state()
            exchange = await self._agent_turn(live, message.channel, lambda g: g.say(text))
            if exchange is not None:
                await self._settle(live, exchange, before, message.channel)

    async def _person_ends(self, live: LiveGame, text: str, place: Any) -> None:
        """The person's message ends the game (deal, walk-away): played without the agent, and
        even while the agent still owes its move (a walk-away before its opening)."""
        game = live.game
        before = game.to_state()
        if self._persons_turn(game):
            exchange = await game.say(text)  # the game is over after it: the agent is not asked
        else:
            exchange = await game.walk_away()
        await self._settle(live, exchange, before, place)

    async def _agent_opens(self, live: LiveGame, place: Any) -> None:
        """Let the agent make the move it owes (its opening, or a retry after a failure)."""
        before = live.game.to_state()

        async def opening(game: HumanGame) -> Exchange:
            return Exchange(turns=await game.start())

        exchange = await self._agent_turn(live, place, opening)
        if exchange is not None:
            await self._settle(live, exchange, before, place, agent_only=True)

    @staticmethod
    def _persons_turn(game: HumanGame) -> bool:
        return game.done or game.negotiation.next_role is game.human_role

    async def _settle(self, live: LiveGame, exchange: Exchange, before: dict[str, Any],
                      place: Any, *, agent_only: bool = False) -> None:
        """Save what an exchange did, then show it; a failed agent turn is taken back."""
        game = live.game
        if game.done and game.negotiation.outcome is Outcome.ERROR:
            log.warning("game %s: agent %s failed (%s); the move is taken back", live.id,
                        live.agent_name, game.negotiation.error)
            self._restore(live, before)
            what = "make my move" if agent_only else "answer that"
            again = "Say anything and I'll try again." if agent_only else (
                "Your message wasn't counted and the game is saved: send it again, or walk away.")
            await quietly(place.send(f"Sorry, I couldn't {what}: the model failed. {again}"))
            return
        try:
            await self._save(live)
        except StoreError:
            self._restore(live, before)
            raise
        if exchange.notice:
            await self._post(live, place, exchange.notice)
        agent_turns = exchange.turns if agent_only else exchange.turns[1:]
        posted = True  # saved first, then posted: a restart posts what is saved but not posted
        for turn in agent_turns:
            posted = await self._post(live, place, turn_text(game, turn)) is not None \
                and posted
        if game.done:
            await self._conclude(live, place, posted=posted)
        elif posted:
            self._mark_posted(live)

    def _restore(self, live: LiveGame, state: dict[str, Any]) -> None:
        """Put the game back as it was before a move that failed or could not be saved."""
        live.game = HumanGame.from_state(state, Unseated(live.agent_name),
                                         turn_timeout=self.bot.cfg.negotiation.turn_timeout_s)

    async def _post(self, live: LiveGame, place: Any, content: str | None = None,
                    **kwargs: Any) -> Any:
        """Send into the game's thread; a thread that is gone ends the game as abandoned."""
        try:
            return await place.send(content, **kwargs)
        except discord.NotFound:
            await self._end(live, Outcome.ABANDONED, "the game's thread is gone", place=None)
        except discord.HTTPException as exc:
            log.warning("game %s: cannot post in %s: %s", live.id, live.place_id, exc)
        return None

    async def _touch(self, live: LiveGame) -> None:
        """The person is here (even if that message was no move): restart the inactivity clock."""
        await self.bot.store.update_game(live.id, state=live.state())

    async def _save(self, live: LiveGame) -> None:
        game = live.game
        if not game.done:
            await self.bot.store.update_game(live.id, state=live.state())
            return
        record = game.record()
        await self.bot.store.finish_game(live.id, state=live.state(),
                                         outcome=record.outcome.value,
                                         deal_price=record.deal_price, metrics=record.metrics)

    async def _conclude(self, live: LiveGame, place: Any, *, posted: bool = True) -> None:
        """Post the result card, take the buttons away, forget the game (it is saved); the
        card is marked posted once it is (a restart posts it otherwise)."""
        self.live.pop(live.id, None)
        self.places.pop(live.place_id, None)
        await self._release_sequence(live)
        if place is None:  # nowhere to post it any more
            self._mark_posted(live, card=True)
            return
        card = result_card(live.game.record(), human_role=live.human_role,
                           player=live.player_name, agent=live.agent_name, game_id=live.id,
                           daily=live.daily)
        if await quietly(place.send(embed=card)) is not None and posted:
            self._mark_posted(live, card=True)
        if live.intro_message_id is not None:
            await quietly(place.get_partial_message(live.intro_message_id).edit(view=None))
        if live.thread_id is not None and isinstance(place, discord.Thread):
            # A finished game's thread leaves the server's active threads (Discord caps them at
            # 1,000); the result stays readable, and a new message would reopen it.
            await quietly(place.edit(archived=True))

    # ----------------------------------------------------------------- buttons

    async def press(self, interaction: discord.Interaction, game_id: int, action: str) -> None:
        live = await self.load(game_id)
        if live is None:
            await respond(interaction, "This game is over.")
            return
        if interaction.user.id != live.player_id:
            await respond(interaction, f"This is {live.player_name}'s game. Start your own with "
                                       f"/haggle.")
            return
        if action == "status":
            await respond(interaction, embed=status_embed(live.game, player=live.player_name,
                                                          agent=live.agent_name))
            return
        # Accept and Walk away need no model call: they never wait in (or are refused by) the
        # model's line; a turn still waiting there is withdrawn, one being answered finishes.
        seen = live.game.agent_offer
        self._withdraw(live)
        await interaction.response.defer()
        place = interaction.channel
        live.place = place
        async with live.lock:
            if live.game.done:
                return
            if action == "accept" and live.game.agent_offer != seen:
                await interaction.followup.send(
                    f"My offer changed while you clicked: it's {money(live.game.agent_offer)} "
                    f"now. Press "
                    f"Accept again to take it.", ephemeral=True)
                return
            before = live.game.to_state()
            exchange = await (live.game.accept() if action == "accept" else live.game.walk_away())
            if exchange.notice:
                await interaction.followup.send(exchange.notice, ephemeral=True)
                return
            try:
                await self._save(live)
            except StoreError:
                self._restore(live, before)
                raise
            if exchange.turns:
                turn = exchange.turns[0]
                text = button_turn_text(turn.act, turn.price, live.player_name)
            else:  # walked away before the agent's opening move
                text = button_turn_text(Act.QUIT, None, live.player_name)
            posted = await self._post(live, place, text) is not None
            await self._conclude(live, place, posted=posted)


async def setup(bot: HaggleBot) -> None:
    bot.add_dynamic_items(GameButton)
    await bot.add_cog(Games(bot))


async def teardown(bot: HaggleBot) -> None:
    bot.remove_dynamic_items(GameButton)
