"""What the games, daily and stats cogs show: embeds, the status line, and the scores they rank.

Shared by several extensions, so it lives beside them (the leading underscore keeps it out of
the extension list: it has no ``setup``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import discord

from bot.discord_util import EMBED_DESCRIPTION_LIMIT, EMBED_FIELD_VALUE_LIMIT, clip, label_text, safe_text
from bot.negotiation.prompts import money
from bot.negotiation.runner import NegotiationRecord
from bot.negotiation.scenario import Scenario
from bot.negotiation.turns import Act, Outcome, Role

DEAL_COLOUR = discord.Colour.green()
NO_DEAL_COLOUR = discord.Colour.orange()
NEUTRAL_COLOUR = discord.Colour.light_grey()
INFO_COLOUR = discord.Colour.blurple()


def limit_word(role: Role) -> str:
    """What a side's reservation price is called: the seller's bottom line, the buyer's ceiling."""
    return "bottom line" if role is Role.SELLER else "ceiling"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def num(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- a game


def intro_embed(scenario: Scenario, *, human_role: Role, player: str, agent: str,
                max_turns: int, personality: str | None = None,
                daily: str | None = None) -> discord.Embed:
    """The card a game thread opens with (the buttons hang under it)."""
    bot_role = human_role.other
    title = f"{'Daily challenge ' + daily + ': ' if daily else ''}{scenario.title}"
    embed = discord.Embed(title=clip(label_text(title), 256), colour=INFO_COLOUR,
                          description=clip(safe_text(scenario.description or "No description."),
                                           EMBED_DESCRIPTION_LIMIT // 4))
    embed.add_field(name="Listed at", value=money(scenario.listing_price))
    embed.add_field(name="You are", value=f"the {human_role.value}")
    embed.add_field(name="Your target", value=money(scenario.target(human_role)))
    who = f"`{agent}`" + (f", {personality}" if personality else "")
    embed.add_field(name=f"The {bot_role.value}", value=who)
    embed.add_field(name="Turns", value=f"{max_turns} in all")
    embed.add_field(
        name="How to play",
        value=("Type your messages here like in a chat: ask questions, make offers "
               "(\"would you take $150?\"). **Accept** takes my current offer, **Walk away** "
               "ends without a deal, **Status** shows the table. My "
               f"{limit_word(bot_role)} is drawn for this game and stays secret until "
               + ("the day's challenge is over." if daily else "the end.")),
        inline=False)
    embed.set_footer(text=label_text(f"{player} vs {agent}"))
    return embed


def table_line(game: Any) -> str:
    """The small line under each of the bot's messages: offers on the table, turns left."""
    bot_role = game.human_role.other
    parts = []
    if game.agent_offer is not None:
        parts.append(f"{bot_role.value}'s offer {money(game.agent_offer)}")
    else:
        parts.append(f"no offer from the {bot_role.value} yet")
    if game.human_offer is not None:
        parts.append(f"yours {money(game.human_offer)}")
    if not game.done:
        parts.append(f"{game.turns_left} turn{'s' if game.turns_left != 1 else ''} left")
    return "-# " + " · ".join(parts)


def status_embed(game: Any, *, player: str, agent: str) -> discord.Embed:
    sc = game.scenario
    embed = discord.Embed(title=clip(label_text(f"Status: {sc.title}"), 256), colour=INFO_COLOUR)
    embed.add_field(name="Listed at", value=money(sc.listing_price))
    embed.add_field(name="Your target", value=money(sc.target(game.human_role)))
    embed.add_field(name=f"The {game.human_role.other.value}'s offer",
                    value=money(game.agent_offer) if game.agent_offer is not None else "none yet")
    embed.add_field(name="Your offer",
                    value=money(game.human_offer) if game.human_offer is not None else "none yet")
    embed.add_field(name="Turns left", value=str(game.turns_left))
    embed.set_footer(text=label_text(f"{player} vs {agent}"))
    return embed


def _ending(record: NegotiationRecord, human_role: Role) -> tuple[str, discord.Colour]:
    last = record.turns[-1] if record.turns else None
    who = "you" if last is not None and last.role is human_role else f"the {human_role.other.value}"
    if record.outcome is Outcome.DEAL:
        return f"Deal at {money(record.deal_price)}", DEAL_COLOUR
    if record.outcome is Outcome.QUIT:  # the agent quits with a turn; a person may without one
        agent_quit = last is not None and last.role is not human_role and last.act is Act.QUIT
        return f"No deal: {'the ' + human_role.other.value if agent_quit else 'you'} walked away", \
            NO_DEAL_COLOUR
    if record.outcome is Outcome.REJECT:
        return f"No deal: {who} rejected the offer", NO_DEAL_COLOUR
    if record.outcome is Outcome.TURN_LIMIT:
        return "No deal: out of turns", NO_DEAL_COLOUR
    if record.outcome is Outcome.TIMEOUT:
        return "No deal: the game timed out", NEUTRAL_COLOUR
    if record.outcome is Outcome.ABANDONED:
        return "Game abandoned", NEUTRAL_COLOUR
    return "Game stopped: the bot failed (not counted)", NEUTRAL_COLOUR


def result_card(record: NegotiationRecord, *, human_role: Role, player: str, agent: str,
                game_id: int, daily: str | None = None) -> discord.Embed:
    """The end of a game: the price, the person's surplus against the bot's secret limit
    (revealed now), and the negotiation's metrics.

    A daily challenge game reveals neither the limit nor the share of the zone (from which
    the limit follows): everyone plays the same limit that day, so both wait for the final
    ranking once the day is over."""
    sc = record.scenario
    bot_role = human_role.other
    secret = sc.reservation(bot_role)
    title, colour = _ending(record, human_role)
    embed = discord.Embed(
        title=title, colour=colour,
        description=clip(f"**{safe_text(sc.title)}**, listed at {money(sc.listing_price)}. {safe_text(player)} played "
                         f"the {human_role.value} against `{agent}`.", EMBED_DESCRIPTION_LIMIT))
    embed.add_field(name=f"The {bot_role.value}'s secret {limit_word(bot_role)}",
                    value="revealed with the final ranking, once the day is over" if daily
                    else money(secret))
    embed.add_field(name="Your target", value=money(sc.target(human_role)))
    metrics = record.metrics
    if record.deal_price is not None and daily:
        embed.add_field(name="Your deal", inline=False,
                        value=f"{money(record.deal_price)}; your share of the bargaining zone "
                              f"comes with the final ranking.")
    elif record.deal_price is not None:
        p = record.deal_price
        share = metrics.get(f"{human_role.value}_surplus_share")
        low, high = sc.seller_reservation, sc.buyer_reservation
        if human_role is Role.BUYER:
            verdict = (f"You paid {money(p)}; the seller would have gone down to {money(secret)}, "
                       f"so {money(max(0.0, p - secret))} was left on the table.")
        else:
            verdict = (f"You sold at {money(p)}; the buyer would have paid up to {money(secret)}, "
                       f"so {money(max(0.0, secret - p))} was left on the table.")
        embed.add_field(
            name=f"Your surplus: {pct(share)} of the zone",
            value=clip(f"{verdict} The bargaining zone ran from {money(low)} to {money(high)}.",
                       EMBED_FIELD_VALUE_LIMIT),
            inline=False)
    embed.add_field(
        name="Metrics",
        value=(f"turns {metrics.get('dialogue_length', len(record.turns))}/{record.max_turns} · "
               f"fairness {num(metrics.get('fairness'))} · bias {num(metrics.get('bias'))} · "
               f"aggressiveness {num(metrics.get('aggressiveness'))} · concession rate "
               f"{num(metrics.get('concession_rate'))}"),
        inline=False)
    fallbacks = sum(1 for t in record.turns if t.fallback)
    if fallbacks:
        embed.add_field(name="Note", inline=False,
                        value=f"The model stumbled on {fallbacks} turn(s); a rule-based move "
                              f"stood in and was recorded as such.")
    embed.set_footer(text=f"game #{game_id}" + (f" · daily challenge {daily}" if daily else ""))
    return embed


def turn_text(game: Any, turn: Any) -> str:
    """One of the bot's moves as posted: what it says, then the table line."""
    text = f"{safe_text(turn.utterance)}\n{table_line(game)}"
    if turn.fallback:
        text += "\n-# (the model stumbled; a rule-based move stood in)"
    return text


def button_turn_text(act: Act, price: float | None, player: str) -> str:
    if act is Act.ACCEPT and price is not None:
        return f"**{safe_text(player)}** accepts {money(price)}."
    return f"**{safe_text(player)}** walks away."


# --------------------------------------------------------------------------- scores


def own_share(row: Any) -> float | None:
    """The person's surplus share in a finished game (None without a deal)."""
    metrics = row.metrics or {}
    return metrics.get(f"{row.human_role}_surplus_share") if row.deal_price is not None else None


@dataclass
class DailyEntry:
    player_id: int
    name: str
    outcome: str
    deal_price: float | None
    share: float | None
    turns: int


def daily_ranking(rows: Sequence[Any], names: Mapping[int, str]) -> list[DailyEntry]:
    """A day's attempts, best first: deals by the person's surplus share (fewer turns break
    ties, then who finished first), then the games without a deal."""
    entries = []
    for row in rows:
        if row.status != "finished" or row.outcome == Outcome.ERROR.value:
            continue
        entries.append((row.id, DailyEntry(
            row.player_id, names.get(row.player_id, str(row.player_id)), row.outcome,
            row.deal_price, own_share(row),
            int((row.metrics or {}).get("dialogue_length") or 0))))
    entries.sort(key=lambda e: (e[1].share is None, -(e[1].share or 0.0), e[1].turns, e[0]))
    return [e for _, e in entries]


def ranking_lines(entries: Sequence[DailyEntry], *, limit: int = 15, shares: bool = True) -> str:
    """The ranking as lines; ``shares=False`` (a day still running) leaves the shares of the
    zone out, since with the price they give the bot's secret limit away."""
    lines = []
    for rank, e in enumerate(entries[:limit], 1):
        if e.deal_price is not None:
            share = f"{pct(e.share)} of the zone, " if shares else ""
            lines.append(f"**{rank}.** {safe_text(e.name)}: deal at {money(e.deal_price)}, "
                         f"{share}{e.turns} turns")
        else:
            lines.append(f"**{rank}.** {safe_text(e.name)}: no deal ({e.outcome.replace('_', ' ')})")
    if len(entries) > limit:
        lines.append(f"… and {len(entries) - limit} more")
    return clip("\n".join(lines) or "Nobody has finished yet.", EMBED_DESCRIPTION_LIMIT)
