"""The words people begin a move with: how a hybrid agent rephrases a move its model keeps
repeating (bot/negotiation/llm_agent.py).

The embedded narrator, given a move it has made before ("make a counter-offer of $180"), tends
to write its last line again with the new price ("I'm willing to offer you $180 for it.", after
"... $160 for it."), which the agent must not send ("you already said that"); people do this in
0.4% of their lines. When every candidate of a turn fails, the agent draws a second round, each
candidate made to begin with a word people begin that move with and that this agent has not
begun a line with yet ("How" -> "How about $180?"); the model writes the rest.

OPENERS is derived from the narrator's training targets (CraigslistBargains validation: the
words people wrote for each move) by training/narrator.py's ``opener_table``; a test checks it
against the data. Pure: no data is read at serving time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.negotiation.turns import Act, Role

OPENERS_PER_MOVE = 7      # the most frequent first words kept per move
OPENER_MIN_TARGETS = 30   # a move with fewer targets pools both roles' targets of its act
GREETINGS = frozenset({"hi", "hello", "hey"})  # how a conversation opens, not how a move is rephrased

WORD = re.compile(r"[A-Za-z][A-Za-z']*")  # an opener: letters and apostrophes, a regex literal

# opener_table(load_craigslist(validation)), most frequent first.
OPENERS: dict[str, tuple[str, ...]] = {
    'buyer accept': ('Great', 'Thanks', 'Ok', 'Okay', 'Sounds', 'Alright', 'Awesome'),
    'buyer counter-price': ('I', 'How', 'The', 'Can', 'Ok', 'Would', 'If'),
    'buyer inform': ('Yes', 'I', 'Good', 'It', 'Well', 'Certainly', 'Correct'),
    'buyer init-price': ('I', 'Would', 'Awesome', 'Oh', 'Yes', 'Ok', 'Great'),
    'buyer inquire': ('I', 'Yes', 'How', 'Is', 'What', 'Are', 'Does'),
    'buyer insist': ('I', 'So', 'It', 'No', 'Ok', 'Sorry', 'All'),
    'buyer offer': ('I', 'Okay', 'Ok', 'Hmm', 'That', 'Well', 'Yes'),
    'seller accept': ('Great', 'Ok', 'That', 'Okay', 'Awesome', 'Deal', 'Sounds'),
    'seller counter-price': ('I', 'How', "That's", 'The', 'If', 'Would', 'Could'),
    'seller inform': ('Yes', 'It', 'I', 'The', 'This', 'Well', 'Its'),
    'seller init-price': ('I', 'Yes', 'Great', 'The', "It's", 'They', 'This'),
    'seller inquire': ('I', 'Yes', 'Great', 'What', 'Okay', 'Are', 'It'),
    'seller insist': ('I', 'So', 'It', 'No', 'Ok', 'Sorry', 'All'),
    'seller offer': ('I', 'Okay', 'Yes', 'Alright', 'Ok', 'Well', 'You'),
}


def first_word(text: str) -> str | None:
    """The line's first word, capitalised ("i'm willing" -> "I'm"); None when it opens otherwise
    (a price, a digit, punctuation)."""
    m = WORD.match(text.strip())
    return m.group(0).capitalize() if m else None


def opener_root(word: str) -> str:
    """What openers are told apart by: "I'm", "I'll" and "I" are one ("i"), "That's" is "that"."""
    return word.lower().split("'", 1)[0]


def openers_for(role: Role, act: Act, avoid: Iterable[str], n: int) -> list[str]:
    """Up to ``n`` openers of the move, most frequent first, none sharing a root with a line in
    ``avoid`` (what the agent said before, what its candidates just wrote)."""
    taken = {opener_root(w) for w in map(first_word, avoid) if w is not None}
    return [w for w in OPENERS.get(f"{role.value} {act.value}", ())
            if opener_root(w) not in taken][:max(0, n)]
