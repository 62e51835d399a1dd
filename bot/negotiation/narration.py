"""Checks on a narrated line: would a person haggling over this item write it for this move?

A hybrid agent's policy picks the act and the price; the model only writes the words, and the
grammar (prompts.narration_pattern) already guarantees the price is stated once and no other
number appears. What the grammar cannot see, these checks catch, from what the default agents
were measured to write (docs/narration.md):

    cut off          the line stops mid-sentence ("... I would be") or at the grammar's cap
    broken slot      a slot left empty around the price ("for a price of ?", "in the .")
    instruction echo the prompt's wording comes back ("No other price specified.")
    wrong role       a buyer talks like the seller or the reverse ("I'm asking $90")
    off topic        assistant talk or things unrelated to a haggle ("assist you", "a lease")
    wrong act        an accept that accepts nothing, a counter that sounds like a yes ("deal"),
                     words the move's price contradicts ("come down to" the same price)

They run at serving time on every candidate line (llm_agent.py picks the best passing one),
in bench/narration_quality.py on whole transcripts, and in tests. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.negotiation.prompts import NARRATION_AFTER_PRICE, NARRATION_UNPRICED, money
from bot.negotiation.turns import Act, Role

CHECKS = ("cut_off", "broken_slot", "instruction_echo", "wrong_role", "off_topic", "wrong_act")

# A sentence cannot end on these words ("... I would be", "... for the").
_DANGLING = frozenset(
    "a an the of for to at in on with and or but if so my your our their its be "
    "would could should can will i i'm i'd i'll we than as from by very really just".split())
# An article or "of" right before punctuation: an empty slot ("in the .", "a price of ?").
_EMPTY_SLOT = re.compile(r"\b(a|an|the|of|price of)\s*[?.!,;:]", re.I)
_ECHO = re.compile(
    r"no other price|price (is )?(specified|given|decided|stated)|your move|one or two sentences|"
    r"write only|state the price|the price exactly|these instructions|json|utterance|"
    r"directive|counter-?offer of|as an ai\b|language model|\bmention no\b|private goal|"
    r"turns? (left|in all)|\[turn", re.I)
_OFF_TOPIC = re.compile(
    r"\bassist(ance)?\b|how (can|may) i help|here to help|happy to help|customer service|"
    r"\bmy work\b|in exchange for|a story\b|\blease\b|\brent(al)?\b|\bapartment\b|\bstudio\b|"
    r"new home|your family|\bsubscribe|\bwebsite\b|\bclick\b|\bemail me\b|\bphone number\b|"
    r"\bshipping address\b|\bcredit card\b|\bpaypal\b|\bthank you for (your|the) (purchase|order)|"
    r"\bdonat(?:e|ing) (?:\$|a |an |some |your )|"
    r"\bplace to stay\b|\bfor a night\b|\bpick you up\b",  # (blind readings of 2026-12-03; 1 of
    # 10,674 people's lines)
    re.I)
# A rental is not carried away: picking it up is off topic there ("I will pick it up at $1,350").
_CARRY = re.compile(r"\bpick (?:it |them )?up\b|\bpick-?up\b", re.I)
# A counter that opens with a yes reads as an accept of the other side's price ("Yes, $70"
# after an offer of $63), unless a "but" says otherwise.
_YES_OPENING = re.compile(r"^\W*(?:yes|yeah|yep)\b(?![^.!?]{0,30}\bbut\b)", re.I)
# Any priced move whose first sentence is a yes and the price, when the other side has named
# another price: "Yes, $600" after "Would it be $550?", "Sure, I am willing to take $1,000"
# after an offer of $700 (blind reading of 2026-12-02; 9 of 2,360 people's priced moves after
# a price open this way in CraigslistBargains validation + test, and those read as muddled too).
# A "great" / "that's great" opening reads the same way ("Great, I would like to offer you a deal
# of $2,450" after an offer of $2,200, "That's great. I'm willing to do $11,300.": blind reading
# of 2026-12-03, seed 4; with the yes, 7 of the 884 people's priced moves of validation + test
# that follow another price of the other side's open so).
# ... and so do "sounds good" and "that would be great" ("That sounds great, $3,100." after
# $3,300, "That would be great, I'll give you $2,000." after $2,500: thirteenth session, seeds
# 13-17; 2 and 0 of the 759 people's priced moves that follow another price open so) ...
# ... and so does calling a price good ("That's a good price if I can get $395" after $550,
# "That's a great deal, how about $64?" after $62: eighth session, from the seventh's readings;
# 2 of the 884 people's priced moves that follow another price open so).
_YES_PRICED = re.compile(r"^\W*(?:yes|yeah|yep|sure|no problem|(?:(?:it|that|this) )?sounds? (?:good|great|fine)|"
                         r"(?:that|it) would be (?:great|perfect|awesome|fine)|"
                         r"(?:(?:it'?s|that'?s|that is|sounds|what) )?(?:(?:a|like a) )?"
                         r"(?:(?:really|very|pretty) )?(?:great|perfect|awesome|wonderful|"
                         r"(?:good|fair|nice) (?:price|deal|offer)))\b(?:\s*[.!,]+\s)?(?![^.!?]*\bbut\b)"
                         r"[^.!?]*?\d", re.I)
_HOUSING = re.compile(r"\b(housing|apartment|house|room|studio|rent|lease|condo)\b", re.I)
# "I", "I'd be happy to", "I'm willing to", ... : the speaker's own move comes next.
_I_WILLING = (r"\bi(?:'m| am|'d| would| will|'ll| can| could)?(?: be)?"
              r"(?: (?:willing|happy|glad|able|like|love))?(?: to)? ")
_SELLER_TALK = re.compile(
    r"\bi'?m asking\b|\bi am asking\b|\bit'?s yours\b|\bi('?d| can| could| will) let it go\b|"
    r"\bi (can|could|will) come down\b|\bmy lowest\b|\bi'?m selling\b|\bi am selling\b|"
    r"\bmy (item|listing)\b|\bi can sell\b|\bi'?ll sell\b|\bwilling to sell\b|"
    r"\byou can get (it|one) for\b|\bget it for you\b|\bhappy to provide\b|"
    # the buyer asking the seller to buy or to pay (measured blind: "would you be willing to buy
    # it for $420?", "Can you give me $90?", "Can you offer me $5,875 for it?")
    r"\b(?:would|will|can|could|do) you (?:be )?(?:(?:willing|want|like|able) )?(?:to )?"
    r"(?:buy|purchase|pay me)\b|\b(?:give|offer|pay) me \$|\bdiscount on (?:my )?\$|"
    # ... or taking the money ("I'm willing to accept $3,225 for the car"), or offering the item
    # ("How would you be interested in it?") (blind reading of 2026-12-02, seed-1 scenarios)
    r"\bi(?:'m| am|'d| would| will|'ll)(?: be)? (?:willing|happy|glad|able) to (?:accept|take) "
    r"\$[\d,.]+ for (?:it|the|this|my|your)\b|"
    r"\b(?:would|are) you (?:be )?interested in (?:it|buying|this)\b|"
    # ... or coming down, holding the lowest price, accepting a price (blind reading of
    # 2026-12-02, seed-3 scenarios: "I'd like to come down to $15" while raising; none of the
    # 10,674 people's lines of CraigslistBargains validation + test say these as a buyer)
    rf"{_I_WILLING}(?:come|go) down\b|\blowest (?:price )?i can\b|"
    r"\bi(?:'m| am|'d| would| will|'ll)?(?: be)? (?:willing|happy|glad|able|like) to accept \$|"
    # ... or asking the buyer to buy, offering a discount (blind reading of 2026-12-03, seed 3
    # with pick = "first": "Are you willing to buy this chair for $555?"; no buyer of the
    # 10,674 people's lines of validation + test says these)
    r"\b(?:are|would) you (?:be )?willing to buy\b|"
    r"\b(?:can|could) i give you a (?:discount|deal)\b|\b(?:give|offer|provide) you a discount\b|"
    # ... or taking a price, asking if the seller has questions or will fetch the item, calling
    # a price too low (blind reading of 2026-12-03, seed 4: "I'm willing to take $10,600",
    # "How about $57? Do you have any questions?"; 1 buyer of the 10,674 people's lines says one)
    r"\bi(?:'m| am|'d| would| will|'ll)?(?: be)? (?:willing|happy|glad|able) to take \$|"
    r"\bdo you have any (?:other )?questions\b|"
    r"\b(?:would|could|can) you (?:be willing to )?pick (?:it|them) up\b|\btoo low\b|"
    # ... or asking the seller to pay more, or to buy (seed 5: "I can give you $2,225 if you are
    # willing to pay more", "... for $130 if you buy it"; no buyer of the 10,674 people's lines)
    r"\byou(?:'re| are)?(?: be)? willing to pay more\b|\bif you buy it\b|"
    # ... or selling it, asking or taking a price for it (sixth session, seed 4 with one
    # sentence: "I could sell it for $70", "I was asking $1,675 for the apartment", "I'm taking
    # $2,200 for the apartment", "I would like to take $740 for it"; no buyer of the 10,674)
    rf"{_I_WILLING}sell (?:it|this|them)\b|\bi (?:was|am|'m) asking \$|\bi(?:'m| am) taking \$|"
    r"\bi(?:'m| am|'d| would| will|'ll| can| could)?(?: be)? (?:like|love|happy|willing|glad) "
    r"to take \$[\d,.]+ for (?:it|the|this)\b|"
    # ... or taking a price, taking it down, holding a floor, getting a price for it (eighth
    # session, from the seventh's readings of seeds 7-9: "I'll take $1,800", "I'm willing to take
    # it down to $75", "I can't go below $10", "I can get $205 for it"; 1 buyer of the 10,674
    # people's lines says one, "I can't go any lower than $200", labelled a buyer's by mistake)
    r"\bi(?:'ll| will| can| could|'d| would|'m going to| am going to| would like to|'d like to)? take \$|"
    r"\btake it down\b|\b(?:can'?t|cannot|won'?t) go (?:any )?(?:below|lower)\b|"
    r"\bi (?:can|could) get \$[\d,.]+ for\b|"
    # ... or asking the seller to pay, or for the cash, asking if the seller has questions, or
    # stating the price as the item's (twelfth session, seeds 13-14 read in pairs: "Would you be
    # willing to pay $8,000 for it?", "would you be willing to give me the cash?", "Would you
    # have any questions about it?", "It is $90", "I have it for $90"; 1 buyer of the 10,674
    # people's lines says one, "Would you be willing to pay $285?", sellers say them 7 times)
    r"\b(?:would|will|can|could|are|do) you (?:be )?(?:(?:willing|want|like|able|available|ready|"
    r"happy) )?(?:to )?pay \$|\bgive me (?:the )?cash\b|\bwould you have any (?:other )?questions\b|"
    r"^\W*(?:no,?\s*|ok(?:ay)?,?\s*)?(?:it'?s|it is|that'?s|that is|the price is) \$[\d,.]+\W*$|"
    r"(?<!can )(?<!could )\bi have it for \$|"
    # ... or going as low as a price (thirteenth session, make demo: "I can go as low as $13"
    # raising to $13; 0 of the 5,377 people's buyer lines say it, sellers 11 times)
    r"\bi(?:'m| am)?(?: (?:can|could|will|would|'ll|'d|willing to|able to))? go as low as\b|"
    # ... or doing a price "for you", or taking a price (thirteenth session, from the readings of
    # seeds 13-15: "I would like to do $1,975 for you.", "I would take $2,250.", "How about $925
    # and I can do it for you?"; 0 of the 5,377 people's buyer lines, sellers 6, 10 and 1 times)
    r"\$[\d,.]*\d for you\b|\b(?:do|make) it for you\b|"
    # ... or liking a price, calling its price the item's, having the deal or the house, taking
    # the item off the list (fourteenth session, seed 18: "I'd like $1,000", "The price of the
    # studio is $1,400", "Hi, I have a house in the area for $2,600", "I'm going to take it off
    # the list right now"; 0, 1, 0 and 0 of the 6,648 people's buyer lines)
    r"\bi(?:'d| would) like \$|\bthe price (?:of [^.?!]{0,30})?is \$|"
    r"\bi have (?:a|an|the) (?:great |good |nice )?(?:deal|house|home|apartment|car|studio)\b|"
    r"\boff the (?:list|table|market)\b|"
    # ... or dropping it to a price (seed 19: "I'll drop it for $15"; 0 of the 6,648)
    r"\bi(?:'ll| will| can| could|'d| would)? drop it (?:for|to)\b",
    re.I)
_BUYER_TALK = re.compile(
    r"\bi'?d like to buy\b|\bi want to buy\b|\bi'?ll buy\b|\bi can pay\b|\bmy budget\b|"
    r"\bi'?m interested in (buying|your)\b|\bcan i buy\b|\bgo up to\b|\bthe most i can\b|"
    r"\bi'?m looking to buy\b|\bi would buy\b|\bi can afford\b|\bi'?m (just )?looking for\b|"
    r"\bi'?ll pay\b|\bgoing to spend\b|\bmy collection\b|"
    r"\bi'?(ll|d) (love to |like to |be happy to )?take it\b|\bwhat is (it|the item)\b|"
    r"\bwhat are you selling\b|"
    # the seller asking to take a price, or to take the item for a ride (thirteenth session, from
    # the readings of seeds 13-15: "Can I take $15,500?", "Could I take $200?", "I would like to
    # take it for a spin."; 0 of the 5,297 people's seller lines, 1 buyer's each)
    r"\b(?:can|could) i take\b|\btake (?:it|her|him) (?:out )?for a (?:spin|test ?ride|ride|drive)\b|"
    # ... or asking the buyer to come down, or getting it for a price (seed 16: "Could you come
    # down to $9,900?", "I can get it for $975"; 0 of the 5,297 people's seller lines, buyers 21
    # and 0 times)
    r"\b(?:could|can|would|will) you (?:come|go) down\b|\bi (?:can|could) get it for \$|"
    # ... or speaking of the one who asks the price as someone else (seed 18: "They're asking
    # $1,900 for it!"; 0 of the 13,223 people's lines)
    r"\b(?:they|he|she)(?:'re| are|'s| is) asking\b|"
    # ... or moving in (seed 19: "I can take $3,700 and move in."; 0 of the 6,575 people's
    # seller lines)
    r"\$[\d,.]*\d and (?:i(?:'ll| will| can) )?move in\b|\bi (?:can|could|will|'ll) move in\b|"
    # the seller speaking as the one who pays, buys or fetches (measured blind: "I'm willing to
    # pay $275", "I would be happy to buy it for $580", "I can pick it up for $285")
    r"\bi(?:'m| am|'d| would| will|'ll| can| could)(?: be)?(?: (?:willing|happy|glad|ready|"
    r"able|like|love|want|going))?(?: to)? (?:pay (?:you )?\$|(?:buy|purchase) (?:it|this|them|"
    r"your)\b|pick (?:it |them )?up\b)|"
    r"\boffer(?:ing)?(?: you)? \$[\d,.]+ for (?:it|the|this|your)\b|"
    r"\b(?:willing|happy|glad|able|like) to offer \$|"
    r"\bi(?:'m| am|'d| would| will|'ll| can| could)?(?: be)?(?: (?:willing|happy|glad|able))?"
    r"(?: to)? take (?:it|them) for\b|"  # people's sellers never say it (buyers do, 5 of 6,648)
    r"\bi(?:'m| am)(?: (?:really|very|extremely|so|definitely))* interested\b"
    r"(?! in (?:selling|trading|your offer|hearing))|\bi have \$|"
    # ... or going up, giving money, having the item, asking for a discount, coming by (blind
    # readings of 2026-12-02: "I would love to give you $20", "Can you give me a discount?";
    # 1 of the 10,674 people's lines says one of these as a seller)
    rf"{_I_WILLING}(?:come|go) up\b|{_I_WILLING}(?:just have to )?give you \$|"
    r"\bi (?:can|could) have it\b|\b(?:give|get) me a (?:discount|deal|better price)\b|"
    rf"{_I_WILLING}come (?:by|out)\b|"
    # ... or fetching, paying, asking the price (blind reading of 2026-12-03: "Can I come and
    # pick it up for $3,000?", "I will pay you cash as well", "Can you give me the price of the
    # condo?"; 1 of the 10,674 people's lines says one of these as a seller)
    rf"\bcan i (?:come (?:and |to )?)?pick (?:it|them) up\b|{_I_WILLING}pay you\b|"
    r"\bgive me the price\b|"
    # ... or calling a price too high, having no questions (seed 4: "I think $90 is too high",
    # "I do not have any questions about it"; 1 seller of the 10,674 people's lines says one)
    r"\btoo high\b|\bi (?:do not|don'?t) have any questions\b|"
    # ... or coming to fetch it, looking at the buyer's item (seed 5: "I'll come and pick it up
    # for $155", "I am looking at your house for sale"; sixth session: "I'll come pick it up";
    # no seller of the 10,674 people's lines)
    rf"{_I_WILLING}come (?:and |to )?pick\b|\bi(?:'m| am) looking at your\b|"
    # ... or looking to purchase it (twelfth session, seed 13: "Hi there, I am looking to purchase
    # the car for a price of $20,000"; 1 seller of the 10,674 people's lines, "I would like to
    # purchase for 3000")
    r"\bi(?:'m| am) looking to (?:buy|purchase)\b|\bi(?:'d| would) like to purchase\b|"
    # ... or buying, thanking for a discount (sixth session, seed 4: "I'm happy to buy and have a
    # $70 offer", "thanks for the discount I will go to $11,500"; 1 seller of the 10,674)
    rf"{_I_WILLING}buy\b|\bthanks? (?:you )?for the discount\b|"
    # ... or fetching it, holding money, asking about the item, getting a price (eighth session,
    # from the seventh's readings: "I will do $475 and I promise to pick it up", "I do have $2,375
    # in cash", "How many miles does it have?", "I can get you $1,275"; 4 sellers of the 10,674
    # people's lines say one, two of them buyers' lines labelled a seller's)
    r"\bi\b(?:(?!\byou\b)[^.!?,]){0,30}\bpick (?:it|them) up\b|\bi (?:do |already |still )have \$|"
    r"\bhow many miles\b|\bi (?:can|could) get (?:you )?\$",
    re.I)
# A seller who opens by asking the buyer for a price has taken the buyer's words.
_BUYER_OPENING = re.compile(r"\b(could|can) you do\b|\bwould you (take|accept)\b", re.I)
_YES = re.compile(r"\b(deal|ok(ay)?|sure|sounds (good|great|fair)|works|agreed?|yes|yeah|yep|"
                  r"accept|i'?ll take|it'?s yours|let'?s do it|you got it|you'?ve got|fine|perfect|great|"
                  r"alright|all right|allright|awesome|cool|good (deal|price))\b",
                  re.I)
# Words that accept, whatever follows them: a proposal cannot say them ("I will accept your offer
# of $110 and I can go the other way", "I would like to take $110 and I will accept").
_ACCEPTING = re.compile(r"\bi(?:'ll| will| would| can)? accept\b(?! (?:less|anything|that low|"
                        r"nothing|no less|under|below))|\baccept (?:the|this|your) offer\b|"
                        r"\binterested in your offer\b|"
                        # (eighth session: "I'm willing to take that offer, but ... $1,225", "I am
                        # willing to accept this price and $1,975 is my pick"; 2 of the people's
                        # 3,840 priced proposals say one, both accepting in fact)
                        r"(?<!not )(?<!n't )(?<!cannot )\b(?:accept|take) (?:this|that|your) "
                        r"(?:offer|price|deal)\b", re.I)
# A priced move whose words say no price is being given ("I can't give you a price yet. $13 ...").
_NO_PRICE = re.compile(r"\b(can'?t|cannot|won'?t) (give|make|name|offer) (you )?(a|any) price\b|"
                       r"\bno price (yet|now)\b|\bprice (later|tomorrow)\b", re.I)
_NO = re.compile(r"\b(no|not|can'?t|cannot|won'?t|too (low|high|much)|sorry|pass)\b", re.I)
# The move's price is what the item would sell for, never an amount off it ("I'm willing to take
# $110 off", seventh session, seed 7; 7 of the 10,674 people's lines, each where the dataset's
# price label is the discount)
# (discount of, drop $: 0 of the 10,674; "I can drop $15 for it" insisting on $15: make demo)
_DISCOUNT = re.compile(r"\$[\d,.]*\d\s+off\b|\bdiscount of \$|\bdrop \$", re.I)
# ... nor one the speaker refuses in the same breath ("The price is too low and I'm not willing
# to take $100" proposing $100: seventh session, seed 7; no person of the 3,840 priced lines of
# CraigslistBargains validation + test refuses their own price in the first person)
_REFUSING = (r"(?:\bi(?:'m| am)? not (?:be )?(?:willing|able|going|happy) to|\bi (?:can'?t|cannot|"
             r"won'?t|wouldn'?t|couldn'?t|don'?t|do not)) (?:take|accept|do|pay|go(?: for)?) ")
# ... nor the listing's, unless it is ("Hi, I'm interested in the chairs you listed for $90" for
# chairs listed at $150: eighth session, from the seventh's readings; people's lines that say
# "listed for $X" give the listing's price, but for one Blue Book value, 1 of 25)
_LISTED = re.compile(r"\blist(?:ed|ing)?(?: (?:it|price|them))?(?: (?:at|for|is|was|of))? \$", re.I)
# ... nor the other side's ("I appreciate the offer of $2,375" after an offer of $1,200; 0 of
# people's priced proposals quote an offer of theirs as the other side's)
_THEIR_OFFER_OF = re.compile(r"\b(?:your|the|that|this) offer of \$", re.I)
# A move's direction: a seller comes down, a buyer goes up ("I can come down to $550" asking the
# listing's $550 again; none of the 12 people's lines that say so with one price contradict it)
_DOWN = re.compile(r"\b(?:come|go|drop|bring it|get it|move) down\b|\blower (?:it |the price )?to\b|"
                   r"\bdrop (?:it|the price) to\b", re.I)
# A seller's discount or deal offered is a move down too ("I can offer you a discount for $15"
# insisting on its $15: make demo; "I would like to offer you a deal for $550" at the listing's
# $550: seed 15, thirteenth session; 3 and 1 of the 5,297 people's seller lines offer one so)
_DISCOUNT_WORD = re.compile(r"\b(?:offer|give|do)(?: you)? a (?:small |little )?discount\b|"
                            r"\bdiscount(?:ed)? (?:for|to|at) \$|\boffer you a deal\b", re.I)
_UP = re.compile(r"\b(?:come|go|move|bump it) up\b(?! with)|\braise (?:it|my offer)\b|\bincrease\b", re.I)
# An answer that promises one and gives none ("Yes, I can give you a price for it.", "I'll be
# happy to answer your question."; 1 of the 10,674 people's lines says so, and answers)
_EMPTY_PROMISE = re.compile(r"\b(?:give you a price|answer your questions?)\b", re.I)
# A price used as a noun for the item ("I'm interested in the $110.", "I am looking for a $1,150
# apartment"; 0 of the 10,674)
_PRICE_AS_ITEM = re.compile(r"\b(?:interested in|looking (?:for|at)) (?:the |a |an )\$", re.I)
# An accept that asks the other side to take the price (seed 18: "That sounds good, would you take
# $3,000?" taking $3,000; 0 of the 383 people's lines labelled accept)
_ASKS_TO_TAKE = re.compile(r"\b(?:would|will|can|could) you (?:take|accept|do|go)\b[^.!]*\?", re.I)
# A counter that sounds like a yes: "deal"/"sounds good" with nothing that makes it a proposal.
_PROPOSAL = re.compile(r"\?|\b(how about|would you|could you|can you|can do|could do|"
                       r"meet|best|lowest|most|offer|if)\b", re.I)


@dataclass(frozen=True)
class Finding:
    check: str
    detail: str


def _last_word(text: str) -> str:
    words = re.findall(r"[a-z']+|\$?\d[\d,.]*", text.lower())
    return words[-1] if words else ""


def narration_findings(utterance: str, act: Act, role: Role, *, price: float | None = None,
                       category: str = "", title: str = "",
                       their_price: float | None = None, my_price: float | None = None,
                       listing: float | None = None) -> list[Finding]:
    """What is wrong with ``utterance`` as ``role``'s words for ``act`` (empty: nothing found).
    ``their_price`` / ``my_price``: the other side's and the speaker's standing offers, when
    named; ``listing``: the listing's price (a seller who has named none stands at it)."""
    text = utterance.strip()
    out: list[Finding] = []
    if not text:
        return [Finding("cut_off", "empty")]
    tail = text.rstrip()
    cap = NARRATION_AFTER_PRICE if price is not None else NARRATION_UNPRICED
    if tail[-1] not in ".!?)" and _last_word(tail) in _DANGLING:
        out.append(Finding("cut_off", f"ends on {_last_word(tail)!r}"))
    elif len(tail) >= cap - 2 and tail[-1] not in ".!?":
        out.append(Finding("cut_off", "stops at the length cap"))
    m = _EMPTY_SLOT.search(text) or _PRICE_AS_ITEM.search(text)
    if m:
        out.append(Finding("broken_slot", m.group(0)))
    # ... or a price glued to a word ("the у$6,500 price", "Auto Contra.$3,500"), or a verb
    # where the price slot wants a noun ("I'm willing to pick $315": blind reading, seed 5)
    if re.search(r"\$\s*[?.!,]|\bprice of\s*$|\[\w*\]|`|[^\W\d]\$\d|\w[.,;:]\$\d|"
                 r"\bpick (?:up )?\$|"
                 # a placeholder, a price asked the price of (twelfth session, seeds 13-14: "a
                 # discount of  x dollars", "how much is $100?"; none of the 10,674 people's lines;
                 # an underscore glued to the price, "it has all the adadr_$15": make demo)
                 r"\b[xyn] dollars\b|\bhow much is \$", text, re.I):
        out.append(Finding("broken_slot", "a dangling mark where a word should be"))
    m = _ECHO.search(text)
    if m:
        out.append(Finding("instruction_echo", m.group(0)))
    m = _OFF_TOPIC.search(text)
    housing_item = bool(_HOUSING.search(f"{category} {title}"))
    if m and not (housing_item and _HOUSING.search(m.group(0))):
        out.append(Finding("off_topic", m.group(0)))
    elif housing_item and (m := _CARRY.search(text)):
        out.append(Finding("off_topic", f"{m.group(0)} (a rental)"))
    m = (_SELLER_TALK if role is Role.BUYER else _BUYER_TALK).search(text)
    if m is None and role is Role.SELLER and act is Act.INIT_PRICE:
        m = _BUYER_OPENING.search(text)
    if m:
        out.append(Finding("wrong_role", m.group(0)))
    if act is Act.ACCEPT and (not _YES.search(text) or re.search(r"\bno\b|\bnot\b|can'?t", text, re.I)):
        out.append(Finding("wrong_act", "an accept that does not say yes"))
    elif act is Act.ACCEPT and _ASKS_TO_TAKE.search(text):
        out.append(Finding("wrong_act", "an accept asked as a question"))
    elif act in (Act.QUIT, Act.REJECT) and _YES.search(text) and not _NO.search(text):
        out.append(Finding("wrong_act", "walking away sounds like a yes"))
    elif act in (Act.COUNTER_PRICE, Act.OFFER, Act.INIT_PRICE) and (
            (re.search(r"\b(deal|agreed|i accept|sounds good|you got it|i'?ll take it|i'?ll do it)\b",
                       text, re.I) and not _PROPOSAL.search(text))
            or _ACCEPTING.search(text)
            or (act is Act.COUNTER_PRICE and _YES_OPENING.search(text))
            or _yes_to_another_price(text, price, their_price)):
        out.append(Finding("wrong_act", "a proposal that reads like an accept"))
    elif act is Act.INSIST and _yes_to_another_price(text, price, their_price):
        out.append(Finding("wrong_act", "a yes to their price, then another price"))
    elif price is not None and act is not Act.ACCEPT and _NO_PRICE.search(text):
        out.append(Finding("wrong_act", "a priced move that says it gives no price"))
    elif act is Act.INQUIRE and "?" not in text:
        out.append(Finding("wrong_act", "an inquiry that asks nothing"))
    if price is not None and _DISCOUNT.search(text):
        out.append(Finding("wrong_act", "the price said as a discount"))
    if price is not None and re.search(_REFUSING + re.escape(money(price)), text, re.I):
        out.append(Finding("wrong_act", "refuses the price it proposes"))
    if price is None and _EMPTY_PROMISE.search(text):
        out.append(Finding("wrong_act", "promises an answer and gives none"))
    out += _price_findings(text, act, role, price, their_price, my_price, listing)
    return out


def _differs(price: float, other: float) -> bool:
    """Whether ``price`` is another price than ``other`` (more than half a percent away)."""
    return abs(price - other) > 0.005 * other


def _price_findings(text: str, act: Act, role: Role, price: float | None, their_price: float | None,
                    my_price: float | None, listing: float | None) -> list[Finding]:
    """What the words say about the move's price that the price contradicts (the grammar lets a
    line state one price: the move's)."""
    if price is None:
        return []
    out: list[Finding] = []
    if listing is not None and _differs(price, listing) and _LISTED.search(text):
        out.append(Finding("wrong_act", "calls its price the listing's"))
    if act is not Act.ACCEPT and (their_price is None or _differs(price, their_price)) \
            and _THEIR_OFFER_OF.search(text):
        out.append(Finding("wrong_act", "calls its own price the other side's offer"))
    before = my_price if my_price is not None else (listing if role is Role.SELLER else None)
    if before is not None and act is not Act.ACCEPT:
        if role is Role.SELLER and price >= before - 0.005 * before and (
                _DOWN.search(text) or _DISCOUNT_WORD.search(text)):
            out.append(Finding("wrong_act", "comes down to a price no lower than before"))
        elif role is Role.BUYER and price <= before + 0.005 * before and _UP.search(text):
            out.append(Finding("wrong_act", "goes up to a price no higher than before"))
    return out


def _yes_to_another_price(text: str, price: float | None, their_price: float | None) -> bool:
    return (price is not None and their_price is not None and _differs(price, their_price)
            and bool(_YES_PRICED.search(text)))


def distinct_n(lines: Sequence[str], n: int) -> float | None:
    """Distinct n-grams / all n-grams over ``lines`` (words, lower case); None without n-grams."""
    grams = []
    for line in lines:
        words = re.findall(r"[a-z']+|\$[\d,.]+", line.lower())
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None
