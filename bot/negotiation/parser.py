"""Rule-based utterance parser: free text -> (dialogue act, price).

Used where no model labels the text for us: the messages people type to the bot, and
unlabelled dialogues (the CraigslistBargains test split). It follows the conventions of the
CraigslistBargains labels (made by CoCoA's own rule-based parser) where they make sense, and
plain meaning where they do not: a textual "deal" is an accept here (the corpus calls it
agree or unknown), "that's too high" is a disagree, "any discount?" a vague-price.
``bench/parser_accuracy.py`` measures it against the validation split.

Prices. Every number in the text (digits, "$1.2k", "2 grand", "1e9", number words such as
"one fifty" or "a hundred and twenty") is a candidate, then dropped if it is something
else: a phone number, a year, a model number ("iPhone 12", "PS4"), a size or a count
("27 inch", "3 bedroom", "2 kids"), a percentage, a time, a date, an ordinal, a negative
number. Explicit money ("$5", "5 bucks") is always a price; a bare number must also be
plausible next to the listing price when one is given. ``Parsed.prices`` lists every
candidate that survives. *The* price is then chosen among them:

- a change of price ("$50 off", "70 more") is never the price; a reference ("I paid 445",
  "it retails at $70", "$400 new") is the price only when nothing else is named;
- with a history, a price new to the dialogue beats one that repeats a standing offer;
- the speaker-favourable one wins: a seller's highest, a buyer's lowest (so a range,
  "between 80 and 90" or "80-90", means 80 from a buyer and 90 from a seller), as in CoCoA;
  a buyer quoting the listing price back is not offering it; with no role, the last one
  (the first end of a range).

Acts, in order of precedence (the first rule that fires wins):

1. empty text -> unknown
2. reject ("no deal", "not interested", "I'll pass"), unless it comes with a priced proposal
3. accept ("deal", "I'll take it", "sounds good", "agreed"), unless the message also
   proposes something (a new price, a condition, a question, a request to go lower)
4. quit ("I'm out", "forget it", "bye"), when no price is named
5. insist ("final offer", "firm", "can't go lower"), with or without a price
6. a price: init-price when no price was named before in the dialogue, else counter-price
   (a question with a price, "150?", is a proposal, not an inquiry). With a history, a
   price equal to the counterpart's standing offer is an agree and a repeat of the
   speaker's own standing offer an insist, unless it is the listing price.
7. with a history, the opening message -> intro, whatever it asks
8. vague-price ("can you go lower?", "any discount?", "$50 off?")
9. disagree ("too much", "that's too high", "no way")
10. intro (greetings: "hi", "hello there"; "I'm interested in your ..." before any reply)
11. agree ("ok", "that works", "fair enough")
12. inquire (a question)
13. disagree: a statement with a negation ("no, it has no scratches"), the corpus convention
14. inform: a statement about the item ("it runs great", "only 65,000 miles"), or, with a
    history, any statement answering an inquiry
15. unknown ("thanks", "lol")

The work is bounded: only the first ``MAX_CHARS`` characters are read, every regex runs in
linear time on bounded windows, and no ``str`` input raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from bot.errors import TurnError
from bot.negotiation.turns import Act, Role, Turn, check_price, standing_price

MAX_CHARS = 2000  # longer messages are cut: prices and acts live in the first lines anyway

# A bare number (no "$", no "bucks") is a price only inside this band around the listing price.
PLAUSIBLE_LOW = 0.2
PLAUSIBLE_HIGH = 2.0


@dataclass(frozen=True)
class Parsed:
    """What a message says: its act, *the* price it proposes, and every price it names."""

    act: Act
    price: float | None
    prices: tuple[float, ...] = ()


# --------------------------------------------------------------------------------------------
# Prices
# --------------------------------------------------------------------------------------------

# Digits with optional thousands separators, decimals or exponent ("1e9"), an optional "$"
# before and an optional multiplier ("k", "grand") after. Glued letters are checked later.
_NUMBER = re.compile(
    r"(?P<cur>[$€£]\s?|\b(?:usd|eur|gbp)\s?)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:e\+?\d{1,3}\b)?)"
    r"(?P<mult>\s?k\b|\s?grand\b)?",
    re.IGNORECASE,
)
_PHONE = re.compile(r"(?:\+?1[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b|\b\d{3}-\d{4}\b")
_MONEY_AFTER = re.compile(
    r"\s?(?:[$€£]|dollars?\b|bucks?\b|usd\b|dlls?\b|cash\b|euros?\b|eur\b|gbp\b|quid\b)",
    re.IGNORECASE)
# "pounds" weighs ("it weighs 20 pounds") unless a price word comes first ("I'll take 90 pounds").
_POUNDS_AFTER = re.compile(r"\s?pounds?\b", re.IGNORECASE)
# What may follow a number and its range partner ("2-3 years"), before the unit check.
_RANGE_TAIL = re.compile(r"\s*(?:-|–|to|or)\s*\$?\d[\d,.]*", re.IGNORECASE)
_UNIT_AFTER = re.compile(
    r"\+?\s?-?\s?(?:%|percent\b|per\s?cent\b|inch(?:es)?\b|\"|''|'|ft\b|feet\b|foot\b|"
    r"[gmkt]b\b|gig|megapixel|mp\b|mph\b|mpg\b|miles?\b|mi\b|km\b|kms\b|k\s?miles\b|"
    r"bed(?:room)?s?\b|br\b|bd\b|bath(?:room)?s?\b|ba\b|sq|square|acres?\b|stor(?:y|ies)\b|"
    r"floors?\b|units?\b|rooms?\b|years?\b|yrs?\b|months?\b|mos?\b|weeks?\b|wks?\b|days?\b|"
    r"hours?\b|hrs?\b|minutes?\b|mins?\b|seconds?\b|secs?\b|am\b|pm\b|a\.m\.|p\.m\.|"
    r"o'?clock\b|times\b|people\b|persons?\b|kids?\b|children\b|adults?\b|pieces?\b|pcs\b|"
    r"items?\b|pairs?\b|seats?\b|seater\b|doors?\b|drawers?\b|shelves\b|speeds?\b|"
    r"cyl(?:inders?)?\b|lbs?\b|pounds\b|kg\b|oz\b|ounces?\b|watts?\b|w\b|volts?\b|v\b|"
    r"mm\b|cm\b|m\b|meters?\b|hp\b|cc\b|[gmk]hz\b|hz\b|cores?\b|gen\b|owners?\b|"
    r"blocks?\b|stops?\b|spaces?\b|spots?\b|cars?\b|chairs?\b|stars?\b|points?\b|"
    r"x\b|by\b\s*\d|of\s+(?:them|those|these|the)\b|st\b|nd\b|rd\b|th\b)",
    re.IGNORECASE,
)
# Words right before a number that make it a model, a size or an address, not a price.
_MODEL_BEFORE = re.compile(
    r"(?:\b(?:iphone|ipad|ipod|galaxy|pixel|note|xbox|playstation|ps|model|series|gen|"
    r"generation|version|ver|mark|mk|mac|hero|windows|win|ios|android|size|number|no\.?|"
    r"apt|apartment|unit|room|suite|ste|route|rte|highway|hwy|interstate|exit|level|grade|"
    r"type|class|chapter|vol|volume|season|episode|part|page|step|phase|zone|channel|"
    r"track|core|gopro|nikon|canon|kindle|nexus|lumia|surface)\s?|#\s?)$",
    re.IGNORECASE,
)
# Words that make a following 19xx/20xx a year: strong ones always, weak ones ("my 2015 ...")
# only when a word follows the number.
_YEAR_STRONG_BEFORE = re.compile(
    r"\b(?:a|an|in|since|from|circa|bought|built|made|model|year|early|late|mid|summer|spring|"
    r"fall|winter|january|february|march|april|may|june|july|august|september|october|"
    r"november|december)\s+$",
    re.IGNORECASE,
)
_YEAR_WEAK_BEFORE = re.compile(
    r"\b(?:the|my|his|her|its|our|this|that|their|your|of)\s+$", re.IGNORECASE)
_PRICE_BEFORE = re.compile(
    r"\b(?:do|pay|offer|accept|take|give|sell|for|at|about|around|only|just|is|be|was|"
    r"under|than|say|make\s+it|how\s+about|what\s+about|go|budget|max|rent|price)\s+$",
    re.IGNORECASE,
)
# A plural-looking word after a number usually counts things: "3 drawers", "2 kids".
_PLURAL_AFTER = re.compile(r"\s(?P<word>[a-z]{3,}s)\b", re.IGNORECASE)
_NOT_PLURAL_NOUNS = frozenset({
    "is", "was", "this", "thus", "plus", "yes", "its", "has", "does", "as", "us", "bucks",
    "dollars", "less", "unless", "works", "sounds", "seems", "looks", "thanks",
    "tops", "firm", "flat", "obo", "includes", "otherwise", "always",
    "perhaps", "guess", "address", "express", "process", "across", "whereas",
})

_WORD_ONES = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
              "eight": 8, "nine": 9}
_WORD_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
               "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_WORD_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
              "seventy": 70, "eighty": 80, "ninety": 90}
_WORD_SCALES = {"hundred": 100, "thousand": 1000, "grand": 1000}
_NUMBER_WORD = "|".join(sorted([*_WORD_ONES, *_WORD_TEENS, *_WORD_TENS, *_WORD_SCALES],
                               key=len, reverse=True))
# A run of number words, joined by spaces, hyphens, "and" or a leading "a" ("a hundred").
_WORDS_RUN = re.compile(
    rf"\b(?:an?\s+(?=hundred|thousand|grand))?(?:{_NUMBER_WORD})"
    rf"(?:(?:\s+and\s+|\s+|-)(?:{_NUMBER_WORD}))*\b",
    re.IGNORECASE,
)
_WORD_SPLIT = re.compile(r"[\s-]+")
_GLUED_BEFORE = re.compile(r"[A-Za-z]-$|\d[/:]$")
_GLUED_AFTER = re.compile(r"[/:]\d")
_PERCENT_AFTER = re.compile(r"\s?(?:%|percent\b|per\s?cent\b)", re.IGNORECASE)
_WORD_COUNT_AFTER = re.compile(r"\s+(?:of|more|less|or\s+so)\b", re.IGNORECASE)  # "two of"
_CAPITAL_AFTER = re.compile(r"\s+(?!I\b|I')[A-Z]")
_WORD_AFTER = re.compile(r"\s+[a-z]", re.IGNORECASE)
# A minus sign right before the digits, not joining two numbers as in "80-90".
_NEGATIVE_BEFORE = re.compile(r"(?:^|[^\d\s])\s*\$?[-\u2212]\s?\$?$")
_RANGE_JOIN = re.compile(r"^\s*(?:-|–|to|or)\s*$", re.IGNORECASE)
_BETWEEN_BEFORE = re.compile(r"\bbetween\s+$", re.IGNORECASE)
_AND_JOIN = re.compile(r"^\s*and\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    value: float
    explicit: bool  # marked as money ("$", "bucks"): always a price
    kind: str = "offer"  # or "reference" (what it cost, what it is worth) or "delta" ("$50 off")


def _words_value(run: str) -> float | None:
    """The value of a run of number words, or None when it is a lone small word ("one")."""
    words = [w for w in _WORD_SPLIT.split(run.lower()) if w not in ("and", "a", "an")]
    if not words or (words[0] in _WORD_SCALES and run[:1].lower() != "a"):
        return None  # "grand kids", "hundreds": a scale needs a number or "a" before it
    # Colloquial prices: "one fifty" = 150, "two twenty five" = 225, "fifteen fifty" = 1550.
    groups: list[int] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in _WORD_SCALES:
            groups = []
            break
        if w in _WORD_TENS:
            value = _WORD_TENS[w]
            if i + 1 < len(words) and words[i + 1] in _WORD_ONES:
                value += _WORD_ONES[words[i + 1]]
                i += 1
            groups.append(value)
        else:
            groups.append(_WORD_ONES.get(w) or _WORD_TEENS[w])
        i += 1
    if len(groups) == 2 and groups[0] < 20 and groups[1] >= 10:
        return float(groups[0] * 100 + groups[1])
    # Standard reading: "a hundred and twenty", "two thousand five hundred", "twenty five".
    total = current = 0
    for w in words:
        if w in _WORD_SCALES:
            scale = _WORD_SCALES[w]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
        else:
            current += _WORD_ONES.get(w) or _WORD_TEENS.get(w) or _WORD_TENS[w]
    value = total + current
    if value < 10:  # "one", "two": far more often a count than a price
        return None
    return float(value)


def _looks_like_year(value: float, raw: str, before: str, after: str,
                     listing_price: float | None) -> bool:
    if not (1900 <= value <= 2039) or "," in raw or "." in raw:
        return False
    if _YEAR_STRONG_BEFORE.search(before):
        return True
    if _YEAR_WEAK_BEFORE.search(before) and _WORD_AFTER.match(after):
        return True
    if listing_price and 0.5 * listing_price <= value <= 1.5 * listing_price:
        return False  # a rent of 2000 is more likely than a year nobody asked about
    if _PRICE_BEFORE.search(before):
        return False
    # "2015 Honda": a capitalised word follows; or the message opens with the number.
    return bool(_CAPITAL_AFTER.match(after)) or not before.strip()


def _plausible(value: float, listing_price: float | None) -> bool:
    """Whether a bare number could be an offer on an item listed at ``listing_price``."""
    if listing_price is None:
        return True
    return PLAUSIBLE_LOW * listing_price <= value <= PLAUSIBLE_HIGH * listing_price


def _counts_something(after: str) -> bool:
    """Whether the words after a number make it a size, a time or a count ("3 drawers")."""
    if _UNIT_AFTER.match(after):
        return True
    plural = _PLURAL_AFTER.match(after)
    return bool(plural) and plural.group("word").lower() not in _NOT_PLURAL_NOUNS


def _digit_mentions(text: str, listing_price: float | None) -> list[_Mention]:
    mentions = []
    for m in _NUMBER.finditer(text):
        start, end = m.start(), m.end()
        raw, cur, mult = m.group("num"), m.group("cur"), m.group("mult")
        before, after = text[max(0, start - 40):start], text[end:end + 40]
        value = float(raw.replace(",", "")) * (1000 if mult else 1)
        if not (0 < value < math.inf):  # "0", or more digits than a float holds
            continue
        # Glued to letters or digits ("i7", "PS4", "500GB", "5pm", "1st", "F-150"), part of a
        # date, fraction or time ("5/12", "5:30"), negative ("-5") or a percentage.
        if ((before[-1:].isalnum() and not cur) or _GLUED_BEFORE.search(before)
                or _GLUED_AFTER.match(after) or _NEGATIVE_BEFORE.search(before)
                or _PERCENT_AFTER.match(after)):
            continue
        explicit = (bool(cur or _MONEY_AFTER.match(after)) or (mult or "").strip() == "grand"
                    or bool(_POUNDS_AFTER.match(after) and _PRICE_BEFORE.search(before)))
        if not explicit:
            if after[:1].isalpha() and not mult:
                continue
            range_tail = _RANGE_TAIL.match(after)  # "2-3 years": the unit follows the range
            if (_counts_something(after[range_tail.end():] if range_tail else after)
                    or _MODEL_BEFORE.search(before)
                    or (not mult and _looks_like_year(value, raw, before, after, listing_price))
                    or not _plausible(value, listing_price)):
                continue
        mentions.append(_Mention(start, end, value, explicit))
    return mentions


def _word_mentions(text: str, listing_price: float | None) -> list[_Mention]:
    mentions = []
    for m in _WORDS_RUN.finditer(text):
        value = _words_value(m.group(0))
        if value is None:
            continue
        after = text[m.end():m.end() + 40]
        explicit = bool(_MONEY_AFTER.match(after))
        if not explicit and (_counts_something(after) or _WORD_COUNT_AFTER.match(after)
                             or not _plausible(value, listing_price)):
            continue
        mentions.append(_Mention(m.start(), m.end(), value, explicit))
    return mentions


# "$50 off", "70 more": a change of price, never the price itself.
_DELTA_AFTER = re.compile(
    r"(?:\s?(?:dollars?|bucks?|\$))?\s+(?:off|more|less|extra|cheaper|lower|higher)\b(?!\s+than)",
    re.IGNORECASE,
)
_DELTA_BEFORE = re.compile(r"\b(?:extra|additional|another|knock(?:ing)?|discount\s+of)\s+\$?$",
                           re.IGNORECASE)
# "I paid 445", "it's worth $70", "KBB says 10,000", "$400 new": a reference, not an offer.
_REFERENCE_BEFORE = re.compile(
    r"\b(?:paid|cost|costs|worth|value|values|valued|retail|retails|msrp|kbb|blue\s?book|"
    r"originally|new\s+(?:for|at|is)|sells?\s+for|sold\s+for|go(?:es)?\s+for|listed\s+(?:at|for)|"
    r"bought\s+(?:it|them|this)?\s*(?:for|at))\b[^.!?$\d]{0,20}\$?\s?$",
    re.IGNORECASE,
)
_REFERENCE_AFTER = re.compile(r"\s+(?:brand\s+)?new\b|\s+(?:retail|online|in\s+stores?)\b",
                              re.IGNORECASE)


def _kind(text: str, m: _Mention) -> str:
    before, after = text[max(0, m.start - 40):m.start], text[m.end:m.end + 30]
    if _DELTA_AFTER.match(after) or _DELTA_BEFORE.search(before):
        return "delta"
    if _REFERENCE_BEFORE.search(before) or _REFERENCE_AFTER.match(after):
        return "reference"
    return "offer"


def find_prices(text: str, *, listing_price: float | None = None) -> list[_Mention]:
    """Every price mention in ``text``, in order of appearance."""
    text = _PHONE.sub(lambda m: " " * len(m.group(0)), text)
    mentions = _digit_mentions(text, listing_price) + _word_mentions(text, listing_price)
    mentions = [replace(m, kind=_kind(text, m)) for m in mentions]
    return sorted(mentions, key=lambda m: m.start)


def _ranges(text: str, mentions: list[_Mention]) -> list[tuple[_Mention, _Mention]]:
    """Adjacent pairs that form a range: "80-90", "80 to 90", "between 80 and 90"."""
    pairs = []
    for a, b in pairwise(mentions):
        gap = text[a.end:b.start]
        between = _AND_JOIN.match(gap) and _BETWEEN_BEFORE.search(text[max(0, a.start - 20):a.start])
        if (_RANGE_JOIN.match(gap) or between) and a.value < b.value:
            pairs.append((a, b))
    return pairs


def _choose_price(text: str, mentions: list[_Mention], role: Role | None,
                  listing_price: float | None, ctx: _Context) -> float | None:
    """*The* price of the message (see the module doc).

    Prices that are new to the dialogue come first (repeating a standing offer only insists
    on it or agrees to it); among them the one that favours the speaker wins.
    """
    offers = [m for m in mentions if m.kind == "offer"]
    references = [m for m in mentions if m.kind == "reference"]
    mentions = offers or references  # a change of price ("$50 off") is never the price
    if not mentions:
        return None
    values = [m.value for m in mentions]
    fresh = [v for v in values if not (_same(v, ctx.own_price) or _same(v, ctx.partner_price))]
    values = fresh or values
    if role is None:
        for _, hi in _ranges(text, mentions):  # a range without a role: its first end
            if hi.value in values and len(values) > 1:
                values.remove(hi.value)
        return values[-1]
    if role is Role.BUYER:
        if listing_price is not None:  # a buyer quoting the asking price is not offering it
            values = [v for v in values if not _same(v, listing_price)] or values
        return min(values)
    return max(values)


# --------------------------------------------------------------------------------------------
# Acts
# --------------------------------------------------------------------------------------------

def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_REJECT = _rx(
    r"\bno\s+deal\b", r"\bnot\s+(?:really\s+)?interested\b", r"\bdeal'?s\s+off\b",
    r"\bi(?:'ll|ll|\s+will|\s+have\s+to|\s+must|'m\s+going\s+to)?\s+pass\b(?!\s+by)",
    r"\bi\s+reject\b",
    r"\bi\s+(?:decline|refuse)\b", r"\bno\s+thank(?:s|\s+you)\b", r"\bpass\s+on\s+(?:it|this|that)\b",
    r"^\s*(?:i\s+)?reject(?:ed)?\b",
)
_ACCEPT = _rx(
    r"(?:^|[.!?,;]\s*)(?:(?:ok(?:ay)?|alright|all\s+right|fine|great|sure|yes|yeah|yep|cool|"
    r"perfect|awesome|excellent|then|well|oh|so|it'?s|that'?s)[\s,!.]*){0,3}deal\b(?!\s+with)",
    r"\b(?:it'?s|that'?s|we\s+have|we'?ve\s+got|you'?ve\s+got|you\s+got|you\s+have|got\s+(?:a|yourself\s+a))"
    r"\s+(?:a\s+|yourself\s+a\s+)?deal\b",
    r"\bi\s*(?:'ll|will|ll|can)?\s+take\s+(?:it|them|that|the\s+deal|your\s+offer)\b(?!\s+or\s+leave)",
    r"\bsounds\s+(?:good|great|perfect|fine)\b", r"\bagreed\b", r"\bi\s+accept\b",
    r"\baccepted\b", r"^\W*sold\W*$", r"\blet'?s\s+do\s+(?:it|this|that)\b",
)
_QUIT = _rx(
    r"\bi'?m\s+out\b", r"\bi\s+am\s+out\b", r"\bforget\s+(?:it|this|that)\b",
    r"\b(?:good\s?)?bye\b", r"\bwalk(?:ing)?\s+away\b", r"\bi'?m\s+done\b", r"\bi\s+quit\b",
    r"\bnever\s?mind\b", r"\bi\s+give\s+up\b", r"\blook(?:ing)?\s+elsewhere\b",
    r"\bwast(?:e|ing)\s+(?:of\s+)?(?:my\s+)?time\b",
)
_INSIST = _rx(
    r"\bfinal\s+(?:offer|price|answer)\b", r"\bfirm\b", r"\bbottom\s+line\b",
    r"\b(?:can(?:'?t|not)|won'?t|will\s+not|couldn'?t)\s+go\s+(?:any\s+)?(?:lower|higher|"
    r"down|up|below|above|beyond|under|over)\b",
    r"\b(?:lowest|highest|most|least)\s+i\s+(?:can|could|will|would|am\s+willing\s+to)\b",
    r"\btake\s+it\s+or\s+leave\s+it\b", r"\bno\s+(?:less|lower|more|higher)\b",
    r"\bnot\s+a\s+(?:penny|cent|dime)\b", r"\bnon-?negotiable\b", r"\bthat'?s\s+it\b",
    r"\bmy\s+(?:last|best)\s+(?:offer|price)\b",
)
_VAGUE_PRICE = _rx(
    r"\bgo\s+(?:any\s+)?(?:lower|higher|down|up)\b", r"\bcome\s+(?:down|up)\b",
    r"\b(?:lower|drop|reduce|raise|bring\s+down)\s+(?:the|your|it|that)\b",
    r"\b(?:any|a)\s+discount\b", r"\bdiscount\?", r"\bwiggle\s+room\b", r"\bnegotiab",
    r"\bflexible\b", r"\bbest\s+(?:price|offer)\b", r"\b(?:lowest|highest)\b",
    r"\bbetter\s+(?:price|deal|offer)\b", r"\bcheaper\b", r"\bless\s+than\s+(?:that|asking)\b",
    r"\bwhat\s+(?:price|amount)\b", r"\bmake\s+(?:me\s+)?an\s+offer\b", r"\bwork\s+with\s+me\b",
    r"\bwhat\s+(?:do\s+you\s+have\s+in\s+mind|would\s+you\s+(?:pay|offer))\b",
)
_DISAGREE = _rx(
    r"\btoo\s+(?:much|high|low|expensive|steep|pricey|little|cheap)\b", r"\bno\s+way\b",
    r"\b(?:that'?s|it'?s|is)\s+(?:a\s+lot|a\s+bit\s+much|insane|crazy|ridiculous)\b",
    r"\bcan(?:'?t|not)\s+(?:do|afford|accept)\s+(?:that|this|it)\b", r"\bout\s+of\s+my\s+budget\b",
    r"\bnot\s+(?:worth|enough)\b", r"\bi\s+(?:disagree|don'?t\s+agree)\b",
)
_GREETING = _rx(
    r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|yo|good\s+(?:morning|afternoon|evening|day))\b",
    r"\bhow\s+are\s+you\b", r"\binterested\s+in\b(?!.*\?)",
)
_AGREE = _rx(
    r"^\W*(?:ok(?:ay)?|alright|all\s+right|sure|great|perfect|fine|cool|yes|yeah|yep)[\s.!]*$",
    r"\bthat\s+works\b", r"\bi\s+can\s+do\s+that\b", r"\bfair\s+enough\b",
    r"\b(?:sounds|seems|that'?s|is)\s+(?:fair|reasonable)\b", r"\bi\s+agree\b",
    r"\byou'?re\s+right\b", r"\bgood\s+point\b", r"\bworks\s+for\s+me\b",
)
_QUESTION_START = re.compile(
    r"^\W*(?:what|when|where|why|which|who|whose|how|do|does|did|are|is|was|were|would|will|"
    r"can|could|have|has|any)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:no|not|nope|nah)\b|n't\b|\b(?:can|don|won|isn|aren|wasn|weren|doesn|didn|couldn|"
    r"wouldn|shouldn|haven|hasn)t\b",
    re.IGNORECASE,
)
# A statement about the item: "it runs great", "yes, the frame is steel", "only 65,000 miles".
_INFORM = re.compile(
    r"^\W*(?:(?:yes|yeah|yep|sure|absolutely|of\s+course|definitely|well|no|nope)\b[\s,.!]*)?"
    r"(?:it|it'?s|its|they|they'?re|there|there'?s|the|this|these|those|only|about|around|"
    r"just|(?:i|we)\s+(?:have|had|bought|got|used|'?ve\s+had))\b",
    re.IGNORECASE,
)
# Words that turn a price-bearing accept into a new proposal: "$50 and we have a deal".
_PROPOSAL = _rx(
    r"\?", r"\bif\b", r"\bunless\b", r"\band\s+(?:we|you|it)(?:'?ve|\s+have|'?s|\s+got|\s+is)",
    r"\bhow\s+about\b", r"\bwhat\s+about\b", r"\binstead\b", r"\bcounter\b",
)


_SHORT_GREETING = re.compile(
    r"^\W*(?:(?:hi|hello|hey|hiya|howdy|greetings|yo|good\s+(?:morning|afternoon|evening|day))"
    r"(?:\s+there)?|how\s+are\s+you(?:\s+doing)?(?:\s+today)?|nice\s+to\s+meet\s+you)"
    r"[\W\s]*(?:\b(?:how\s+are\s+you(?:\s+doing)?(?:\s+today)?|i'?m\s+(?:fine|good|well|great)|"
    r"thanks|thank\s+you)\b[\W\s]*)*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Context:
    """What the dialogue so far tells the parser (all unknown without a history)."""

    first: bool = False                 # nothing was said before this message
    has_prices: bool = False            # a price was named earlier
    own_price: float | None = None      # the speaker's standing offer
    partner_price: float | None = None  # the counterpart's standing offer
    partner_act: Act | None = None      # the counterpart's last act
    listing_price: float | None = None


def _context(history: Sequence[Turn] | None, role: Role | None, has_prices: bool,
             listing_price: float | None) -> _Context:
    if history is None:
        return _Context(has_prices=has_prices, listing_price=listing_price)
    has_prices = has_prices or any(t.price is not None for t in history)
    if role is None:
        return _Context(first=not history, has_prices=has_prices, listing_price=listing_price)
    partner_act = next((t.act for t in reversed(history) if t.role is role.other), None)
    return _Context(
        first=not history, has_prices=has_prices,
        own_price=standing_price(history, role),
        partner_price=standing_price(history, role.other),
        partner_act=partner_act, listing_price=listing_price,
    )


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(a))


def is_question(text: str) -> bool:
    return "?" in text or bool(_QUESTION_START.match(text))


def _price_act(price: float, ctx: _Context) -> Act:
    """A message whose price is ``price``: new proposal, insistence or agreement.

    The listing price is always a proposal (as in CraigslistBargains): quoting the asking
    price restates the ask rather than answering the last offer.
    """
    if not _same(price, ctx.listing_price):
        if _same(price, ctx.partner_price):
            return Act.AGREE      # names the counterpart's own offer
        if _same(price, ctx.own_price):
            return Act.INSIST     # repeats the speaker's standing offer
    return Act.COUNTER_PRICE if ctx.has_prices else Act.INIT_PRICE


def _act_for(text: str, price: float | None, has_delta: bool, ctx: _Context) -> Act:
    """The act of a message, by the precedence in the module docstring."""
    if not text:
        return Act.UNKNOWN
    has_price = price is not None
    if _REJECT.search(text) and not (has_price and _PROPOSAL.search(text)):
        return Act.REJECT
    if (_ACCEPT.search(text) and not _PROPOSAL.search(text) and not _VAGUE_PRICE.search(text)
            and not has_delta and (not has_price or _same(price, ctx.partner_price))):
        return Act.ACCEPT
    if _QUIT.search(text) and not has_price:
        return Act.QUIT
    if _INSIST.search(text):
        return Act.INSIST
    if has_price:
        return _price_act(price, ctx)
    if ctx.first:
        return Act.INTRO      # the opening message, whatever it asks
    if has_delta or _VAGUE_PRICE.search(text):
        return Act.VAGUE_PRICE  # about the price, without naming one ("$50 off?")
    if _DISAGREE.search(text):
        return Act.DISAGREE
    if _SHORT_GREETING.match(text) or (_GREETING.search(text) and ctx.partner_act is None):
        return Act.INTRO
    if _AGREE.search(text):
        return Act.AGREE
    if is_question(text):
        return Act.INQUIRE
    if _NEGATION.search(text):
        return Act.DISAGREE
    if ctx.partner_act is Act.INQUIRE or _INFORM.search(text):
        return Act.INFORM
    return Act.UNKNOWN


def parse_utterance(
    text: str,
    *,
    role: Role | str | None = None,
    listing_price: float | None = None,
    has_prices: bool = False,
    history: Sequence[Turn] | None = None,
) -> Parsed:
    """Parse one message into its act and price.

    ``role`` is the speaker's: it decides which end of a range, or which of several prices,
    the speaker means. ``listing_price`` filters implausible bare numbers. ``has_prices``
    says whether a price was named earlier in the dialogue (init-price vs counter-price).
    ``history``, the turns before this message when the caller has them, sharpens the act:
    the opening message is an intro, a price equal to the counterpart's standing offer is an
    agree (an accept when worded as one), repeating one's own offer is an insist, and a
    statement answering an inquiry is an inform.

    Never raises on a ``str``; raises TurnError for a non-string text, an unknown role, a
    listing price that is not a positive number, or a history that is not made of Turns.
    """
    if not isinstance(text, str):
        raise TurnError(f"parse_utterance needs text (a str), got {type(text).__name__}")
    speaker = Role.parse(role) if role is not None else None
    listing = check_price(listing_price, what="listing_price")
    if history is not None and not all(isinstance(t, Turn) for t in history):
        raise TurnError("history must be a sequence of Turn objects (the turns so far)")
    text = text[:MAX_CHARS].strip()
    ctx = _context(history, speaker, has_prices, listing)
    mentions = find_prices(text, listing_price=listing)
    price = _choose_price(text, mentions, speaker, listing, ctx)
    has_delta = any(m.kind == "delta" for m in mentions)
    act = _act_for(text, price, has_delta, ctx)
    return Parsed(act=act, price=price, prices=tuple(m.value for m in mentions))
