"""How /haggle games end without a move, around the Games cog (bot/cogs/games.py): the
inactivity sweep, a deleted thread, the bot closing, and the faults around an ending.

- Closing: turns waiting in a model's line are withdrawn (the person told), turns under way
  finish and are saved before the store closes.
- The outbox: each game's state marks how many turns (and whether its result card) reached
  Discord; a restart posts what was saved but not posted, once.
- The bot's downtime is not the player's: on start, each running game records the restart and
  its inactivity clock counts from the bot's start (or its last save, or the player's last
  message seen, played or turned away, if later).
- A turn of the agent (``_agent_turn``) takes a slot of its model's line and that slot's
  instance under ``[bot] max_model_instances``; a full line or no instance left is said so.
- A final save that keeps failing (disk full, database locked) leaves the game over-but-unsaved
  in memory: the sweep saves and concludes it once the store answers, without pinging the
  player again, and /haggle saves it first rather than locking the player out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands, tasks

from bot.cogs._cards import turn_text
from bot.cogs._live import LiveGame, Unseated
from bot.discord_util import ordinal, quietly, safe_text, typing
from bot.errors import ModelCapacity, StoreError
from bot.model_slots import slot_seat
from bot.negotiation.session import Exchange, HumanGame
from bot.negotiation.turns import Outcome
from bot.queues import QueueFull

if TYPE_CHECKING:
    from bot.app import HaggleBot

log = logging.getLogger(__name__)

TABLE_LINE = "\n-# "  # turn_text: a move's words, then the table line


class GameEndings:
    """Mixed into the Games cog: what ends a game without a move, and recovery around it."""

    bot: HaggleBot
    live: dict[int, LiveGame]
    places: dict[int, int]
    started_at: datetime
    _marks: set[asyncio.Task[None]]  # posted-marks being written
    save_retry_pauses_s: tuple[float, ...] = (0.2, 1.0)  # pauses before retrying a final save

    if TYPE_CHECKING:  # the Games cog's own methods
        async def load(self, game_id: int) -> LiveGame | None: ...
        async def place_of(self, live: LiveGame) -> Any: ...
        async def _save(self, live: LiveGame) -> None: ...
        async def _conclude(self, live: LiveGame, place: Any, *,
                            posted: bool = True) -> None: ...
        async def _post(self, live: LiveGame, place: Any, content: str | None = None,
                        **kwargs: Any) -> Any: ...

    @staticmethod
    def _withdraw(live: LiveGame, why: str | None = None) -> None:
        """Cancel the game's turn that is still waiting in a model's line (never one that the
        model is answering): the person ended the game meanwhile (``why`` None), or the bot is
        closing (``why`` is told to the person)."""
        if live.waiting is not None and not live.waiting.done():
            live.withdrawn = why or ""
            live.waiting.cancel()

    async def _drain(self) -> None:
        """Before the bot closes the store: turns waiting in a model's line are withdrawn (the
        person is told to send the message again), turns under way finish and are saved."""
        for live in list(self.live.values()):
            self._withdraw(live, why="the bot is restarting")
        limit = (self.bot.cfg.negotiation.turn_timeout_s or 60.0) + 5.0
        try:
            async with asyncio.timeout(limit):
                for live in list(self.live.values()):
                    async with live.lock:
                        pass
        except TimeoutError:
            log.warning("closing with a game turn still under way after %.0f s", limit)
        await self.settle_marks()

    async def _agent_turn(self, live: LiveGame, place: Any,
                          action: Callable[[HumanGame], Awaitable[Exchange]]) -> Exchange | None:
        """Run ``action`` (which may ask the agent to move) with the agent seated on a model
        slot: in line behind other games when the model is busy, or not at all (None, the
        person told) when the line is full."""
        spec = self.bot.cfg.agent(live.agent_name)
        if spec.kind != "llm":
            live.game.agent = self.build_agent(live, seat=None)
            try:
                return await action(live.game)
            finally:
                live.game.agent = Unseated(live.agent_name)
        queue = self.bot.queues.get(spec.model)
        asked = asyncio.get_running_loop().time()  # the reply budget counts the wait in line
        try:
            ticket = queue.enter()
        except QueueFull as exc:
            await quietly(place.send(f"The `{spec.model}` model is busy: {exc.waiting} games are "
                                      f"already waiting for it. Your game is saved; send your "
                                      f"message again in a minute."))
            return None
        notice = None
        try:
            live.waiting = asyncio.current_task()
            try:
                if ticket.position:
                    notice = await quietly(place.send(
                        f"⏳ You're {ordinal(ticket.position)} in line for the `{spec.model}` "
                        f"model; I'll answer as soon as it's your turn."))
                slot = await ticket.wait()
            except asyncio.CancelledError:
                why, live.withdrawn = live.withdrawn, None
                if why is None:
                    raise
                asyncio.current_task().uncancel()  # withdrawn on purpose: end quietly
                if why:
                    await quietly(place.send(f"Sorry, {why}: your message wasn't counted and "
                                              f"the game is saved; send it again in a minute."))
                return None
            finally:
                live.waiting = None
            if notice is not None:  # the turn runs now: the "in line" notice goes
                await quietly(notice.delete())
                notice = None
            seat = self._seat(live, spec.model, slot)
            try:  # the instance, under the bot-wide max_model_instances
                await self.bot.factory.pool.acquire(spec.model, seat)
            except ModelCapacity as exc:
                await quietly(place.send(f"Sorry, {exc}. Your game is saved; send your message "
                                          f"again in a minute."))
                return None
            try:
                waited = asyncio.get_running_loop().time() - asked
                live.game.agent = self.build_agent(live, seat=seat, waited=waited)
                async with typing(place):
                    return await action(live.game)
            finally:
                self.bot.factory.pool.unlease(spec.model, seat)
        finally:
            ticket.release()
            live.game.agent = Unseated(live.agent_name)
            if notice is not None:
                await quietly(notice.delete())

    def _seat(self, live: LiveGame, model: str, slot: int) -> str:
        """The model seat of this turn: the queue slot's instance, or, on a batched model,
        the game's own sequence (kept between its turns, freed when it ends)."""
        spec = self.bot.cfg.models.get(model)
        if spec is not None and spec.backend == "llamacpp-batched":
            return f"discord/{model}/game{live.id}"
        return slot_seat(model, slot)

    async def _release_sequence(self, live: LiveGame) -> None:
        """A finished game's sequence on a batched model: its KV cache is removed."""
        agent = self.bot.cfg.agents.get(live.agent_name)
        spec = self.bot.cfg.models.get(agent.model) if agent and agent.kind == "llm" else None
        if spec is not None and spec.backend == "llamacpp-batched" and self.bot.factory:
            await self.bot.factory.pool.release(spec.name, self._seat(live, spec.name, slot=0))

    def from_row(self, row: Any) -> LiveGame:
        """A saved game (running or finished) as a LiveGame, not registered anywhere."""
        meta = row.state.get("bot", {})
        game = HumanGame.from_state(row.state, Unseated(row.agent),
                                    turn_timeout=self.bot.cfg.negotiation.turn_timeout_s)
        return LiveGame(id=row.id, player_id=row.player_id,
                        player_name=row.state["names"][row.human_role], guild_id=row.guild_id,
                        channel_id=row.channel_id, thread_id=row.thread_id, agent_name=row.agent,
                        seed=int(meta.get("seed", 0)), personality=meta.get("personality"),
                        daily=meta.get("daily"), intro_message_id=meta.get("intro_message_id"),
                        restarts=list(meta.get("restarts", [])),
                        posted=int(meta.get("posted", len(row.state["turns"]))),
                        card_posted=bool(meta.get("card_posted", False)), game=game)

    def _mark_posted(self, live: LiveGame, *, card: bool = False) -> None:
        """Everything saved is posted: noted in memory now (the next save carries it) and in
        the store right after, off the game's lock (the person may answer at once)."""
        live.posted, live.card_posted = len(live.game.negotiation.turns), card
        task = asyncio.create_task(self._write_mark(live.id, live.posted, card))
        self._marks.add(task)
        task.add_done_callback(self._marks.discard)

    async def _write_mark(self, game_id: int, turns: int, card: bool) -> None:
        try:
            await self.bot.store.mark_posted(game_id, turns=turns, card=card)
        except StoreError as exc:  # a restart may post it once more: logged, not fatal
            log.warning("game %s: cannot mark its messages posted: %s", game_id, exc)

    async def settle_marks(self) -> None:
        """Wait for the posted-marks still being written."""
        while self._marks:
            await asyncio.gather(*list(self._marks))

    async def flush_outbox(self) -> int:
        """After a restart: post what was saved but never posted (the bot stopped between the
        save and the post): the bot's replies, then the result card. Returns how many."""
        count = 0
        await self.settle_marks()
        for row in await self.bot.store.unposted_games():
            live = await self.load(row.id) if row.status == "active" else self.from_row(row)
            if live is None:
                continue
            async with live.lock:
                place = await self.place_of(live)
                if place is None:  # the thread is gone: nothing can be posted any more
                    self._mark_posted(live, card=live.game.done)
                    continue
                game, posted = live.game, True
                # the person's own messages are in Discord already
                todo = [t for t in game.negotiation.turns[live.posted:]
                        if t.role is not live.human_role]
                # killed after posting but before marking it: those are there, not again
                there = await self._already_posted(place, [safe_text(t.utterance) for t in todo])
                for turn in todo[there:]:
                    posted = await self._post(live, place, turn_text(game, turn)) \
                        is not None and posted
                    count += 1
                if game.done and not live.card_posted:
                    count += 1
                    await self._conclude(live, place, posted=posted)
                elif posted:
                    self._mark_posted(live, card=live.card_posted)
        return count

    async def _already_posted(self, place: Any, words: list[str]) -> int:
        """How many of ``words`` (the escaped words of the moves to post, in order) the bot's
        last moves in ``place`` already show: a kill between a post and its mark. 0 when the
        history cannot be read (then they are posted again rather than lost)."""
        me = getattr(self.bot.user, "id", None)
        if not words or me is None:
            return 0
        try:
            recent = [m async for m in place.history(limit=len(words) + 10)]  # newest first
        except (AttributeError, discord.HTTPException):
            return 0
        mine = [m.content.split(TABLE_LINE, 1)[0] for m in reversed(recent)
                if m.author.id == me and TABLE_LINE in (m.content or "")]
        for k in range(min(len(words), len(mine)), 0, -1):
            if mine[-k:] == words[:k]:
                return k
        return 0

    async def _note_restart(self, row: Any) -> None:
        """The bot was down while this game ran: record how long the game had been quiet when
        the bot came back, and restart its inactivity clock (the downtime is not the player's)."""
        idle_s = (self.started_at - datetime.fromisoformat(row.updated_at)).total_seconds()
        state = dict(row.state)
        meta = dict(state.get("bot", {}))
        meta["restarts"] = [*meta.get("restarts", []),
                            {"at": self.started_at.isoformat(timespec="seconds"),
                             "idle_s": round(max(0.0, idle_s), 1)}]
        state["bot"] = meta
        try:
            await self.bot.store.update_game(row.id, state=state)
        except StoreError as exc:  # the clock still restarts: expire_idle counts from the start
            log.warning("game %s: cannot record the restart: %s", row.id, exc)

    async def _end(self, live: LiveGame, outcome: Outcome, reason: str, *, place: Any) -> bool:
        """End a running game without a move (timeout, deleted thread), saved and concluded.

        When the final save keeps failing (disk full, database locked) the game stays in memory
        as over-but-unsaved: the sweep saves and concludes it once the store answers again, the
        player is not pinged again, and /haggle saves it first. True once saved."""
        if live.game.done:
            return False
        live.game.abandon(outcome, reason)
        if not await self._save_end(live):
            return False
        await self._conclude(live, place)
        return True

    async def _save_end(self, live: LiveGame) -> bool:
        """Save a game that is over, retrying a failing store briefly; False if it still fails
        (the game is then marked unsaved for the sweep)."""
        for pause in (*self.save_retry_pauses_s, None):
            try:
                await self._save(live)
            except StoreError as exc:
                if pause is None:
                    log.error("game %s: its final save failed; the sweep retries: %s", live.id, exc)
                    live.unsaved = True
                    return False
                await asyncio.sleep(pause)
            else:
                live.unsaved = False
                return True
        return False  # not reached

    async def _finish_unsaved(self, live: LiveGame) -> bool:
        """Save and conclude a game whose final save failed before; True once it is done."""
        if not await self._save_end(live):
            return False
        await self._conclude(live, await self.place_of(live))
        return True

    # ----------------------------------------------------------------- endings without a move

    @tasks.loop(seconds=60)
    async def sweeper(self) -> None:
        try:
            await self.expire_idle()
        except Exception:  # a bad sweep must not stop the next one
            log.exception("inactivity sweep failed")

    @sweeper.before_loop
    async def _before_sweeper(self) -> None:
        await self.bot.wait_until_ready()
        try:
            await self.flush_outbox()
        except Exception:  # the sweep must start anyway
            log.exception("posting what was saved but not posted failed")

    async def expire_idle(self, now: datetime | None = None) -> list[int]:
        """End every game nobody wrote in for ``[bot] inactivity_timeout_s``; returns their ids.

        The clock counts from the game's last save, the bot's start or the player's last
        message seen (played or not: refused by the rate limit, a full model line, one at a
        time), whichever is latest: the time the bot was down is never charged to the player,
        nor is being slowed down or turned away."""
        now = now or datetime.now(UTC)
        timeout = self.bot.settings.inactivity_timeout_s
        expired = []
        rows = await self.bot.store.active_games()
        seen = self.seen
        for gone in set(seen) - {row.id for row in rows}:
            del seen[gone]
        for row in rows:
            # a person turned away (rate limit, model line full) is still here (seen: in memory)
            since = max(datetime.fromisoformat(row.updated_at), self.started_at,
                        seen.get(row.id, self.started_at))
            if now - since < timedelta(seconds=timeout):
                continue
            live = await self.load(row.id)
            if live is None or live.lock.locked():
                continue  # finished meanwhile, or a turn is under way right now
            if live.game.done:  # over, but its final save failed: save it, ping nobody
                async with live.lock:
                    if await self._finish_unsaved(live):
                        expired.append(row.id)
                continue
            async with live.lock:
                if now - seen.get(row.id, since) < timedelta(seconds=timeout):
                    continue  # the person wrote while the sweep waited for the game
                place = await self.place_of(live)
                minutes = round(timeout / 60)
                if place is not None:
                    await quietly(place.send(
                        f"<@{live.player_id}>, no message for {minutes} minutes, so this game is "
                        f"over.", allowed_mentions=discord.AllowedMentions(users=True)))
                if await self._end(live, Outcome.TIMEOUT, f"no message for {timeout:g} s",
                                   place=place):
                    expired.append(row.id)
        return expired

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        game_id = self.places.get(payload.thread_id)
        if game_id is None:
            return
        live = await self.load(game_id)
        if live is not None:
            async with live.lock:
                await self._end(live, Outcome.ABANDONED, "the game's thread was deleted",
                                place=None)
            log.info("game %s abandoned: its thread was deleted", game_id)

