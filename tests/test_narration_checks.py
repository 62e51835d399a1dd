"""The narration checks (bot/negotiation/narration.py): they flag what the default agents were
seen writing, pass what people and the templates write, and choose among candidate lines."""

import asyncio
import json
import random
import re
from pathlib import Path

import pytest

from bot.errors import ModelError
from bot.llm.base import ChatResult, Sampling
from bot.llm.fake import FakeBackend
from bot.negotiation.agents import _TEMPLATES, DialogueState, template_utterance
from bot.negotiation.llm_agent import LLMAgent
from bot.negotiation.narration import distinct_n, narration_findings
from bot.negotiation.policy import ConcessionPolicy
from bot.negotiation.prompts import around_price
from bot.negotiation.turns import Act, Role, Turn

VALIDATION = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "craigslist_bargains" / "validation.json"

# Lines the default agents wrote (issue 14), with the check each must trip.
SEEN = [
    ("I am here to assist you in finding a new home that is the right fit for your family.",
     Act.INQUIRE, Role.BUYER, None, "off_topic"),
    ("Please provide a detailed shipping address so I can get it ready to ship. I would be",
     Act.INQUIRE, Role.BUYER, None, "cut_off"),
    ("I can offer $66 to you in exchange for a story about my work and how I've helped people.",
     Act.COUNTER_PRICE, Role.BUYER, 66, "off_topic"),
    ("I can offer $1,375 to the seller in return for a month's lease on a studio apartment.",
     Act.COUNTER_PRICE, Role.BUYER, 1375, "off_topic"),
    ("I'd take $175 and I can offer it to you for a price of ?", Act.COUNTER_PRICE, Role.SELLER, 175,
     "broken_slot"),
    ("I can offer $1,525 for your item in the .", Act.COUNTER_PRICE, Role.BUYER, 1525, "broken_slot"),
    ("The price is $620. No other price specified.", Act.INIT_PRICE, Role.SELLER, 620, "instruction_echo"),
    ("Hi, could you do $600 for it?", Act.INIT_PRICE, Role.SELLER, 600, "wrong_role"),
    ("I'm asking $90 for it, it's in great shape.", Act.COUNTER_PRICE, Role.BUYER, 90, "wrong_role"),
    ("I think we are done here.", Act.ACCEPT, Role.BUYER, 90, "wrong_act"),
    # judged not sensible in the blind reading of 2026-12-01 (docs/narration.md)
    ("I'll take it for $23.", Act.COUNTER_PRICE, Role.SELLER, 23, "wrong_role"),
    ("I'd love to take it for $21.", Act.COUNTER_PRICE, Role.SELLER, 21, "wrong_role"),
    ("What is it? What I am looking for?", Act.INQUIRE, Role.SELLER, None, "wrong_role"),
    ("What is the item and what can I get it for you?", Act.INQUIRE, Role.BUYER, None, "wrong_role"),
    ("It's a great bike. You can get one for $425.", Act.COUNTER_PRICE, Role.BUYER, 425, "wrong_role"),
    ("I'm sorry, I can't give you a price yet. We'll get it later today for $13.50.",
     Act.COUNTER_PRICE, Role.BUYER, 13.5, "wrong_act"),
    # judged not sensible in the blind reading of the 224-step narrator (2026-12-02)
    ("I'm willing to pay $275", Act.COUNTER_PRICE, Role.SELLER, 275, "wrong_role"),
    ("I would be happy to buy it for $580", Act.COUNTER_PRICE, Role.SELLER, 580, "wrong_role"),
    ("I can pick it up for $285", Act.COUNTER_PRICE, Role.SELLER, 285, "wrong_role"),
    ("I can offer $290 for it!", Act.COUNTER_PRICE, Role.SELLER, 290, "wrong_role"),
    ("I would be willing to offer $24", Act.COUNTER_PRICE, Role.SELLER, 24, "wrong_role"),
    ("It's a great bike, I'm interested in it. How much do you have for me?", Act.INQUIRE,
     Role.SELLER, None, "wrong_role"),
    ("Hi! I'm interested in your furniture, would you be willing to buy it for $420?",
     Act.INIT_PRICE, Role.BUYER, 420, "wrong_role"),
    ("Hi I'm looking for a Schwinn mountain bike. Can you give me $90?", Act.INIT_PRICE,
     Role.BUYER, 90, "wrong_role"),
    ("Hi there! I am interested in the Honda Accord lx. Can you offer me $5,875 for it?",
     Act.INIT_PRICE, Role.BUYER, 5875, "wrong_role"),
    ("Hi, I'm interested in the sale. Can you give me a discount on $75?", Act.INIT_PRICE,
     Role.BUYER, 75, "wrong_role"),
    ("I will accept your offer of $110 and I can go the other way.", Act.COUNTER_PRICE,
     Role.SELLER, 110, "wrong_act"),
    ("I would like to take $110 and I will accept", Act.COUNTER_PRICE, Role.SELLER, 110,
     "wrong_act"),
    # the narration bench's first line on the seed-1 scenarios (2026-12-02)
    ("Hi, I'm interested in your cabinet. Can you give me a price for it? Would you be$63?",
     Act.INIT_PRICE, Role.BUYER, 63, "broken_slot"),
    # judged not sensible in the blind reading of the seed-1 scenarios (2026-12-02)
    ("I'm willing to accept $3,225 for the car.", Act.COUNTER_PRICE, Role.BUYER, 3225, "wrong_role"),
    ("Hi, I've got a bike that's really light. How would you be interested in it?", Act.INQUIRE,
     Role.BUYER, None, "wrong_role"),
    ("I can pick up the file cabinet for $67. Is that possible?", Act.COUNTER_PRICE, Role.SELLER,
     67, "wrong_role"),
    ("I'm offering you $995 for this TV", Act.COUNTER_PRICE, Role.SELLER, 995, "wrong_role"),
    ("Yes, I can offer $495", Act.COUNTER_PRICE, Role.BUYER, 495, "wrong_act"),
    # the seller in `make demo` with the narrator defaults (2026-12-02)
    ("I would be willing to take it for $14.50", Act.COUNTER_PRICE, Role.SELLER, 14.5, "wrong_role"),
    # judged not sensible in the blind readings of the seed-3 scenarios (2026-12-02)
    ("I'm happy to come down to $16", Act.COUNTER_PRICE, Role.BUYER, 16, "wrong_role"),
    ("I'd like to come down to $15", Act.COUNTER_PRICE, Role.BUYER, 15, "wrong_role"),
    ("I'd be happy to come up for $15", Act.INIT_PRICE, Role.SELLER, 15, "wrong_role"),
    ("I would love to give you $20", Act.INIT_PRICE, Role.SELLER, 20, "wrong_role"),
    ("Great, I would just have to give you $875", Act.COUNTER_PRICE, Role.SELLER, 875, "wrong_role"),
    ("Great, I can have it for $20", Act.COUNTER_PRICE, Role.SELLER, 20, "wrong_role"),
    ("I'll do $32 for it. Can you give me a discount?", Act.COUNTER_PRICE, Role.SELLER, 32,
     "wrong_role"),
    ("I would be happy to come by for $2,525.", Act.COUNTER_PRICE, Role.SELLER, 2525, "wrong_role"),
    ("I'm willing to accept $105", Act.COUNTER_PRICE, Role.BUYER, 105, "wrong_role"),
    ("That's great! $380 is the lowest price I can go for it", Act.COUNTER_PRICE, Role.BUYER, 380,
     "wrong_role"),
    ("I'm willing to donate $165", Act.INIT_PRICE, Role.SELLER, 165, "off_topic"),
    # judged not sensible in the blind readings of the seed-3 scenarios (2026-12-03)
    ("I'm glad to hear that. Are you willing to buy this chair for $555?", Act.INIT_PRICE,
     Role.BUYER, 555, "wrong_role"),
    ("I'm willing to pick it up for $2,800. Can I give you a discount on the deal?",
     Act.COUNTER_PRICE, Role.BUYER, 2800, "wrong_role"),
    ("I can offer you a deal. Can I come and pick it up for $3,000?", Act.INIT_PRICE, Role.SELLER,
     3000, "wrong_role"),
    ("I am willing to do $2,925 and I will pay you cash as well.", Act.COUNTER_PRICE, Role.SELLER,
     2925, "wrong_role"),
    ("Great, I think it is $1,950. Can you give me the price of the condo?", Act.COUNTER_PRICE,
     Role.SELLER, 1950, "wrong_role"),
    ("I'm really interested in your furniture and can accept $16 for it.", Act.COUNTER_PRICE,
     Role.SELLER, 16, "wrong_role"),
    ("I'm very interested, but I want to be sure of the material and quality.", Act.INFORM,
     Role.SELLER, None, "wrong_role"),
    ("Hi, I'm looking for a place to stay for $13. Can you let me know?", Act.INIT_PRICE,
     Role.BUYER, 13, "off_topic"),
    ("I'm open to $19 and come out for a night at your convenience", Act.COUNTER_PRICE,
     Role.SELLER, 19, "off_topic"),
    # judged not sensible in the blind readings of the seed-4 scenarios (2026-12-03)
    ("That's great, I'm willing to take $10,600", Act.COUNTER_PRICE, Role.BUYER, 10600, "wrong_role"),
    ("How about $57? Do you have any questions?", Act.COUNTER_PRICE, Role.BUYER, 57, "wrong_role"),
    ("I can provide you a discount of $385 as well.", Act.INIT_PRICE, Role.BUYER, 385, "wrong_role"),
    ("I'd like to go for $405. Would you be willing to pick it up?", Act.COUNTER_PRICE, Role.BUYER,
     405, "wrong_role"),
    ("It's a great bike trailer for your kid. I think $90 is too high, so do you have any other "
     "options?", Act.COUNTER_PRICE, Role.SELLER, 100, "wrong_role"),
    ("I do not have any questions about it. I am willing to take $10 if you are interested.",
     Act.COUNTER_PRICE, Role.SELLER, 10, "wrong_role"),
    ("I would really like to accept the offer for $1,925.", Act.COUNTER_PRICE, Role.BUYER, 1925,
     "wrong_act"),
    # judged not sensible in the blind reading of the seed-5 scenarios (2026-12-03)
    ("I am willing to pick up $345", Act.COUNTER_PRICE, Role.BUYER, 345, "broken_slot"),
    ("I would be willing to pick $315", Act.COUNTER_PRICE, Role.BUYER, 315, "broken_slot"),
    ("I can pick you up for $480. Is that right?", Act.COUNTER_PRICE, Role.SELLER, 480, "off_topic"),
    ("Yes, it is available. I am glad to know that you have a Honda Civic Auto Contra.$3,500 in cash",
     Act.INIT_PRICE, Role.SELLER, 3500, "broken_slot"),
    ("You can drive it if you like the motor in there, and the \u0443$6,500 price is just great.",
     Act.INIT_PRICE, Role.SELLER, 6500, "broken_slot"),
    ("I'd be very interested in your offer $585.", Act.COUNTER_PRICE, Role.SELLER, 585, "wrong_act"),
    ("I'll come and pick it up for $155, I'm willing to do that.", Act.COUNTER_PRICE, Role.SELLER,
     155, "wrong_role"),
    ("Hi. I am looking at your house for sale and would like to make a deal with you.", Act.INFORM,
     Role.SELLER, None, "wrong_role"),
    ("I can give you $2,225 if you are willing to pay more.", Act.COUNTER_PRICE, Role.BUYER, 2225,
     "wrong_role"),
    ("I would like to pick it up for $130 if you buy it.", Act.COUNTER_PRICE, Role.BUYER, 130,
     "wrong_role"),
    # judged not sensible in the blind reading of seed 4 with one sentence a move (sixth session)
    ("I could sell it for $70", Act.COUNTER_PRICE, Role.BUYER, 70, "wrong_role"),
    ("I was asking $1,675 for the apartment.", Act.COUNTER_PRICE, Role.BUYER, 1675, "wrong_role"),
    ("I'm taking $2,200 for the apartment.", Act.COUNTER_PRICE, Role.BUYER, 2200, "wrong_role"),
    ("I have a friend who is interested in the bike and I would like to take $740 for it",
     Act.COUNTER_PRICE, Role.BUYER, 740, "wrong_role"),
    ("It's great to see you at the auction this morning, I'm happy to buy and have a $70 offer!",
     Act.INIT_PRICE, Role.SELLER, 70, "wrong_role"),
    ("Great, thanks for the discount I will go to $11,500", Act.INIT_PRICE, Role.SELLER, 11500,
     "wrong_role"),
    ("I'm willing to do $470 and I'll come pick it up.", Act.COUNTER_PRICE, Role.SELLER, 470,
     "wrong_role"),
    # seen in the seed-7 run with rephrasing (seventh session): the price as an amount off
    ("It's a great bike, I'm willing to take $110 off", Act.INIT_PRICE, Role.SELLER, 110, "wrong_act"),
    ("Ok, I will take $75 off", Act.INSIST, Role.BUYER, 75, "wrong_act"),
    ("The price is too low and I'm not willing to take $100", Act.COUNTER_PRICE, Role.SELLER, 100,
     "wrong_act"),
    ("Sorry, I can't do $100.", Act.INSIST, Role.SELLER, 100, "wrong_act"),
    # judged not sensible in the seventh session's readings of seeds 7-9 (eighth session's checks)
    ("I'm willing to take it down to $75.", Act.COUNTER_PRICE, Role.BUYER, 75, "wrong_role"),
    ("I can't go below $10", Act.COUNTER_PRICE, Role.BUYER, 10, "wrong_role"),
    ("I'll take $1,800", Act.COUNTER_PRICE, Role.BUYER, 1800, "wrong_role"),
    ("I can get $205 for it", Act.COUNTER_PRICE, Role.BUYER, 205, "wrong_role"),
    ("I will do $475 and I promise to pick it up in a few days.", Act.COUNTER_PRICE, Role.SELLER,
     475, "wrong_role"),
    ("I would be really happy to pick it up and come home for $95 if you can.", Act.COUNTER_PRICE,
     Role.SELLER, 95, "wrong_role"),
    ("I do have $2,375 in cash for the purchase.", Act.COUNTER_PRICE, Role.SELLER, 2375, "wrong_role"),
    ("Hi, it is a great bike. How many miles does it have?", Act.INFORM, Role.SELLER, None,
     "wrong_role"),
    ("I can get you $1,275.", Act.COUNTER_PRICE, Role.SELLER, 1275, "wrong_role"),
    ("I'm willing to take that offer, but I would like it in a lower range, around $1,225.",
     Act.COUNTER_PRICE, Role.BUYER, 1225, "wrong_act"),
    ("I am willing to accept this price and $1,975 is my pick.", Act.COUNTER_PRICE, Role.SELLER,
     1975, "wrong_act"),
    ("Sure, I'm willing to negotiate a discount of $27,500.", Act.INIT_PRICE, Role.SELLER, 27500,
     "wrong_act"),
    ("Yes, I can give you a price for it.", Act.INFORM, Role.SELLER, None, "wrong_act"),
    ("It looks great. I'll be happy to answer your question.", Act.INFORM, Role.SELLER, None,
     "wrong_act"),
    ("I'm interested in the $110.", Act.INIT_PRICE, Role.BUYER, 110, "broken_slot"),
    ("Hi, I am looking for a $1,150 apartment.", Act.INIT_PRICE, Role.BUYER, 1150, "broken_slot"),
    # judged not sensible by both readers of the paired readings of seeds 13-14 (twelfth session)
    ("Would you be willing to pay $8,000 for it?", Act.COUNTER_PRICE, Role.BUYER, 8000, "wrong_role"),
    ("Ok, are you available to pay $2,875?", Act.COUNTER_PRICE, Role.BUYER, 2875, "wrong_role"),
    ("Would you pay $410 cash?", Act.COUNTER_PRICE, Role.BUYER, 410, "wrong_role"),
    ("If you accept $12 would you be willing to give me the cash?", Act.COUNTER_PRICE, Role.BUYER,
     12, "wrong_role"),
    ("Hello, I am interested in the house. Would you have any questions about it?", Act.INQUIRE,
     Role.BUYER, None, "wrong_role"),
    ("It is $90", Act.COUNTER_PRICE, Role.BUYER, 90, "wrong_role"),
    ("No, that's $90", Act.COUNTER_PRICE, Role.BUYER, 90, "wrong_role"),
    ("I have it for $90", Act.COUNTER_PRICE, Role.BUYER, 90, "wrong_role"),
    ("Hi there, I am looking to purchase the car for a price of $20,000", Act.COUNTER_PRICE,
     Role.SELLER, 20000, "wrong_role"),
    ("Hi I would like to come and pick up the truck for $11,500.", Act.INIT_PRICE, Role.SELLER,
     11500, "wrong_role"),
    ("I am asking $200 for it, but I would like to offer you a discount of  x dollars on top tube.",
     Act.INFORM, Role.SELLER, None, "broken_slot"),
    ("Hi, I'm just excited about this one for sure, how much is $100?", Act.COUNTER_PRICE,
     Role.SELLER, 100, "broken_slot"),
    # make demo's transcripts, twelfth and thirteenth sessions
    ("... it has all the adadr_$15.", Act.INIT_PRICE, Role.SELLER, 15, "broken_slot"),
    ("I can go as low as $13", Act.COUNTER_PRICE, Role.BUYER, 13, "wrong_role"),
    ("I can drop $15 for it", Act.INSIST, Role.SELLER, 15, "wrong_act"),
    ("I can drop $14.50", Act.COUNTER_PRICE, Role.SELLER, 14.5, "wrong_act"),
    # judged unnatural (2 of 5) in the readings of seeds 13-14 with the twelfth session's checks
    ("I would like to do $1,975 for you.", Act.COUNTER_PRICE, Role.BUYER, 1975, "wrong_role"),
    ("I would take $2,250.", Act.COUNTER_PRICE, Role.BUYER, 2250, "wrong_role"),
    ("Can I take $15,500?", Act.COUNTER_PRICE, Role.SELLER, 15500, "wrong_role"),
    ("Could I take $200?", Act.COUNTER_PRICE, Role.SELLER, 200, "wrong_role"),
    # judged not sensible, or unnatural (2 of 5), by both readers of seed 15 (thirteenth session)
    ("How about $925 and I can do it for you?", Act.COUNTER_PRICE, Role.BUYER, 925, "wrong_role"),
    ("This bike is very nice. I would like to take it for a spin.", Act.INFORM, Role.SELLER, None,
     "wrong_role"),
    # ... and of seed 16
    ("Could you come down to $9,900?", Act.COUNTER_PRICE, Role.SELLER, 9900, "wrong_role"),
    ("I can get it for $975", Act.COUNTER_PRICE, Role.SELLER, 975, "wrong_role"),
    # judged not sensible by both readers of seed 18 (fourteenth session)
    ("That sounds good, would you take $3,000?", Act.ACCEPT, Role.BUYER, 3000, "wrong_act"),
    ("I'd like $1,000", Act.COUNTER_PRICE, Role.BUYER, 1000, "wrong_role"),
    ("The price of the studio is $1,400", Act.COUNTER_PRICE, Role.BUYER, 1400, "wrong_role"),
    ("Hi, I have a house in the area for $2,600.", Act.INIT_PRICE, Role.BUYER, 2600, "wrong_role"),
    ("Hi, I have a great deal on this so far and would like to offer you $60 for it.",
     Act.INIT_PRICE, Role.BUYER, 60, "wrong_role"),
    ("I'm going to take it off the list right now, I would be willing to pay $18.",
     Act.COUNTER_PRICE, Role.BUYER, 18, "wrong_role"),
    ("They're asking $1,900 for it!", Act.INIT_PRICE, Role.SELLER, 1900, "wrong_role"),
    # ... and of seed 19
    ("I'll drop it for $15, I'm ready to go", Act.COUNTER_PRICE, Role.BUYER, 15, "wrong_role"),
    ("I can take $3,700 and move in.", Act.COUNTER_PRICE, Role.SELLER, 3700, "wrong_role"),
]


@pytest.mark.parametrize("line, act, role, price, check", SEEN)
def test_lines_the_agents_were_seen_writing_are_flagged(line, act, role, price, check):
    found = {f.check for f in narration_findings(line, act, role, price=price, category="electronics",
                                                 title="Travel adaptor")}
    assert check in found


@pytest.mark.parametrize("line, act, role, price, theirs", [
    ("Yes, $600", Act.INIT_PRICE, Role.SELLER, 600, 550),
    ("Sure, I am willing to take $1,000", Act.INSIST, Role.SELLER, 1000, 700),
    ("Yeah I can do $90", Act.COUNTER_PRICE, Role.BUYER, 90, 120),
    ("Great, I would like to offer you a deal of $2,450 for this chair.", Act.INSIST,
     Role.SELLER, 2450, 2200),
    ("That's great. I'm willing to do $11,300.", Act.INSIST, Role.SELLER, 11300, 10400),
    # (thirteenth session, seeds 13-14: judged unnatural, 2-3 of 5; 2 more of the 759 people's
    # priced moves after another price open so, 10 in all)
    ("That sounds great, $3,100.", Act.COUNTER_PRICE, Role.BUYER, 3100, 3300),
    ("That sounds good, $2,500 and I can do that.", Act.INSIST, Role.SELLER, 2500, 1525),
    # (seeds 16-17: "that would be great" then another price, judged not sensible by both
    # readers; none of the 759 people's priced moves after another price opens so)
    ("That would be great, I'll give you $2,000.", Act.COUNTER_PRICE, Role.BUYER, 2000, 2500),
    # (seed 18: "no problem" then another price, judged not sensible by both readers; 2 of the
    # 1,287 people's priced replies to another price open so)
    ("No problem, $20.", Act.INSIST, Role.SELLER, 20, 18),
])
def test_a_yes_to_their_price_then_another_price_reads_like_an_accept(line, act, role, price, theirs):
    found = narration_findings(line, act, role, price=price, title="Armchair", their_price=theirs)
    assert [f.check for f in found] == ["wrong_act"], found
    if act is not Act.COUNTER_PRICE:  # (a counter that opens with a yes is flagged on its own)
        # the same words are fine where the other side named no price, or named this one
        for named in (None, price):
            assert narration_findings(line, act, role, price=price, title="Armchair",
                                      their_price=named) == []


@pytest.mark.parametrize("line, act, role, price, theirs", [
    ("Yes, it is still available. I'm asking $600 for it.", Act.INIT_PRICE, Role.SELLER, 600, 550),
    ("Yes, but the best I can do is $650", Act.INSIST, Role.SELLER, 650, 550),
    ("Can you come down to $15?", Act.COUNTER_PRICE, Role.BUYER, 15, 20),
    ("I can come down to $18 if you pick it up today.", Act.COUNTER_PRICE, Role.SELLER, 18, 15),
    ("I can go up to $16, but that's my limit.", Act.COUNTER_PRICE, Role.BUYER, 16, 20),
    ("Would you be willing to accept $210 for the chair?", Act.COUNTER_PRICE, Role.BUYER, 210, 250),
    # what people's buyers say that the fourteenth session's checks must let pass
    ("I would like to offer $210 for the chair.", Act.COUNTER_PRICE, Role.BUYER, 210, 250),
    ("I see the price is high for me, would you take $210?", Act.COUNTER_PRICE, Role.BUYER, 210, 250),
    ("I have $210 in cash, would you take that?", Act.COUNTER_PRICE, Role.BUYER, 210, 250),
])
def test_people_s_yes_and_direction_words_pass(line, act, role, price, theirs):
    assert narration_findings(line, act, role, price=price, title="Armchair", their_price=theirs) == []


@pytest.mark.parametrize("line, act, role, price, theirs", [
    ("That's a good price if I can get $395", Act.COUNTER_PRICE, Role.BUYER, 395, 550),
    ("That's a great deal, how about $64?", Act.COUNTER_PRICE, Role.SELLER, 64, 62),
])
def test_calling_their_price_good_then_naming_another_reads_like_an_accept(line, act, role, price,
                                                                          theirs):
    found = narration_findings(line, act, role, price=price, title="Armchair", their_price=theirs)
    assert [f.check for f in found] == ["wrong_act"], found


# Words the move's price contradicts (eighth session, from the seventh's readings), each beside
# the same words where the prices agree with them.
@pytest.mark.parametrize("line, act, role, price, prices, agreeing", [
    ("Hi, I'm interested in the chairs you listed for $90.", Act.INIT_PRICE, Role.BUYER, 90,
     {"listing": 150}, {"listing": 90}),
    ("I appreciate the offer of $2,375", Act.COUNTER_PRICE, Role.SELLER, 2375,
     {"their_price": 1200}, {"their_price": 2375}),
    ("I can come down to $550", Act.COUNTER_PRICE, Role.SELLER, 550,
     {"listing": 550}, {"listing": 600}),
    ("I can come down to $550", Act.COUNTER_PRICE, Role.SELLER, 550,
     {"listing": 700, "my_price": 540}, {"listing": 700, "my_price": 600}),
    ("I can go up to $300", Act.COUNTER_PRICE, Role.BUYER, 300,
     {"my_price": 300}, {"my_price": 250}),
    ("I can offer you a discount for $15.", Act.INSIST, Role.SELLER, 15,
     {"listing": 15, "my_price": 15}, {"listing": 15, "my_price": 18}),
    ("I would like to offer you a deal for $550", Act.INIT_PRICE, Role.SELLER, 550,
     {"listing": 550}, {"listing": 600}),
])
def test_words_the_move_s_price_contradicts_are_flagged(line, act, role, price, prices, agreeing):
    found = narration_findings(line, act, role, price=price, title="Armchair", **prices)
    assert [f.check for f in found] == ["wrong_act"], found
    assert narration_findings(line, act, role, price=price, title="Armchair", **agreeing) == []


@pytest.mark.parametrize("line, act, role, price", [
    ("How about $150? It's barely been ridden.", Act.COUNTER_PRICE, Role.SELLER, 150),
    ("hi, is the bike still available? does it have any rust?", Act.INQUIRE, Role.BUYER, None),
    ("I could do $120 if you can meet me today", Act.COUNTER_PRICE, Role.BUYER, 120),
    ("ok deal, $130 works", Act.ACCEPT, Role.SELLER, 130),
    ("Sorry, that's too low for me. Good luck!", Act.QUIT, Role.SELLER, None),
    ("You can take it for $150 if you pick it up today.", Act.COUNTER_PRICE, Role.SELLER, 150),
    ("It's a great bike, you can get one for $425.", Act.COUNTER_PRICE, Role.SELLER, 425),
    ("I can get it for $395 if you deliver.", Act.COUNTER_PRICE, Role.BUYER, 395),
    ("I'll take $140, it's yours.", Act.ACCEPT, Role.SELLER, 140),
    ("Would you take $150? I can pick it up today.", Act.COUNTER_PRICE, Role.BUYER, 150),
    ("I'm willing to pay $120 for it, cash.", Act.COUNTER_PRICE, Role.BUYER, 120),
    ("I'm interested in selling it soon, so $180 is fine by me.", Act.COUNTER_PRICE, Role.SELLER, 180),
    ("I will accept $140, see you tomorrow.", Act.ACCEPT, Role.SELLER, 140),
    ("I can't accept less than $160.", Act.COUNTER_PRICE, Role.SELLER, 160),
    ("Can you give me a better price? Say $90?", Act.COUNTER_PRICE, Role.BUYER, 90),
    ("Would you be willing to take $120 for it?", Act.COUNTER_PRICE, Role.BUYER, 120),
    ("Yes, it's still available. I'm asking $120.", Act.INIT_PRICE, Role.SELLER, 120),
    ("Yes, but the lowest I can go is $130.", Act.COUNTER_PRICE, Role.SELLER, 130),
    ("Are you willing to buy it for $140 today?", Act.COUNTER_PRICE, Role.SELLER, 140),
    ("I can give you a discount if you pick it up: $130.", Act.COUNTER_PRICE, Role.SELLER, 130),
    ("Can I pick it up tonight for $110? I will pay you cash.", Act.COUNTER_PRICE, Role.BUYER, 110),
    ("I'm very interested. Would you take $100?", Act.COUNTER_PRICE, Role.BUYER, 100),
    ("Great, but I can only do $95.", Act.COUNTER_PRICE, Role.BUYER, 95),
    ("That's too high for me. Would you take $100?", Act.COUNTER_PRICE, Role.BUYER, 100),
    ("That's too low for me, I can do $140.", Act.COUNTER_PRICE, Role.SELLER, 140),
    ("Do you have any questions? It rides great. $150.", Act.COUNTER_PRICE, Role.SELLER, 150),
    ("You can come and pick it up tonight for $140.", Act.COUNTER_PRICE, Role.SELLER, 140),
    ("Would you be willing to pay more than $100? It's barely used.", Act.COUNTER_PRICE,
     Role.SELLER, 130),
    ("ok... $120 then, I'll pick it up.", Act.COUNTER_PRICE, Role.BUYER, 120),
    ("I'd need you to pick it up, but I can do $140.", Act.COUNTER_PRICE, Role.SELLER, 140),
    ("I'll take it for $100 if you can deliver.", Act.COUNTER_PRICE, Role.BUYER, 100),
    ("I can't accept that offer, but I could do $150.", Act.COUNTER_PRICE, Role.SELLER, 150),
    ("I will accept your offer of $120.", Act.ACCEPT, Role.SELLER, 120),
    ("Does it have any scratches? I could do $90.", Act.COUNTER_PRICE, Role.BUYER, 90),
    ("Would you be willing to pay $130? It's in great shape.", Act.COUNTER_PRICE, Role.SELLER, 130),
    ("Can I have it for $100 cash?", Act.COUNTER_PRICE, Role.BUYER, 100),
    ("It's $150.", Act.INIT_PRICE, Role.SELLER, 150),
    ("I can come pick it up today for $110.", Act.COUNTER_PRICE, Role.BUYER, 110),
    ("I am looking to buy one soon. How old is it?", Act.INQUIRE, Role.BUYER, None),
    ("I can go as low as $130, but no lower.", Act.COUNTER_PRICE, Role.SELLER, 130),
    ("Can you go as low as $100?", Act.COUNTER_PRICE, Role.BUYER, 100),
    ("I can do $180 for you.", Act.COUNTER_PRICE, Role.SELLER, 180),
    ("I would take $35", Act.COUNTER_PRICE, Role.SELLER, 35),
    ("Can I take them off your hands for $135 then?", Act.COUNTER_PRICE, Role.BUYER, 135),
    ("When can I come and take it for a test ride?", Act.INQUIRE, Role.BUYER, None),
    ("If you want I'll do it for you. It will take a couple of days.", Act.INFORM, Role.SELLER, None),
])
def test_lines_a_person_writes_pass(line, act, role, price):
    assert narration_findings(line, act, role, price=price, title="Road bike") == []


def test_housing_words_are_on_topic_for_housing():
    line = "Would you take $1,375 for the apartment?"
    assert narration_findings(line, Act.COUNTER_PRICE, Role.BUYER, price=1375, category="housing",
                              title="Studio apartment near campus") == []
    assert narration_findings(line, Act.COUNTER_PRICE, Role.BUYER, price=1375, category="electronics",
                              title="Camera")


def test_every_template_passes_the_checks_for_its_move():
    rng = random.Random(0)
    for (act, role), options in _TEMPLATES.items():
        for role_ in ([role] if role else list(Role)):
            for option in options:
                price = 150.0 if "{p}" in option else None
                line = option.format(p="$150")
                found = narration_findings(line, act, role_, price=price, title="Road bike")
                assert found == [], (act, role_, line, found)
    assert template_utterance(Act.ACCEPT, Role.BUYER, 150, rng)


def test_no_counter_template_reads_like_an_accept():
    for role in Role:
        for option in _TEMPLATES[(Act.COUNTER_PRICE, role)]:
            assert "deal" not in option.lower() and "i'd take" not in option.lower(), option


@pytest.mark.skipif(not VALIDATION.is_file(), reason="needs shared/data/craigslist_bargains")
def test_most_human_narrations_pass_the_checks():
    """People's words for the policy's moves (the narrator's training targets) mostly pass:
    the checks flag what people do not write."""
    from bot.datasets import load_craigslist
    from training.narrator import build_narrator_examples

    examples, _ = build_narrator_examples(load_craigslist(VALIDATION)[:200], split="validation")
    passed = total = 0
    for ex in examples:
        msgs = ex["messages"]
        for i, m in enumerate(msgs):
            if m["role"] != "assistant" or m.get("train") is False:
                continue
            note = msgs[i - 1]["content"]
            line = json.loads(m["content"])["utterance"]
            act = _act_of(note)
            if act is None:
                continue
            total += 1
            item = msgs[0]["content"].split("\n")[1]  # "Item: TITLE (category)"
            passed += not narration_findings(line, act, Role(ex["role"]), price=150 if "$" in line else None,
                                             title=item, category=item)
    assert total > 200 and passed / total >= 0.9, (passed, total)


def _act_of(note: str):
    for text, act in (("make a counter-offer", Act.COUNTER_PRICE), ("propose ", Act.INIT_PRICE),
                      ("accept the", Act.ACCEPT), ("ask them one question", Act.INQUIRE),
                      ("answer them", Act.INFORM), ("hold firm", Act.INSIST)):
        if text in note.rsplit("(Your move:", 1)[-1]:
            return act
    return None


def test_distinct_n():
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n([], 1) is None


# ---- candidates at serving time


def narration(text):
    return json.dumps({"utterance": text})


def hybrid_state(scenario):
    return DialogueState(scenario, Role.SELLER, (Turn(Role.BUYER, Act.INIT_PRICE, 150, "would you take $150?"),), 15)


async def test_the_best_passing_candidate_is_said(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    plan = policy.plan(hybrid_state(scenario))
    p = f"${plan.price:,.0f}"
    backend = FakeBackend([
        ChatResult(narration(f"I can offer {p} for your item in the ."), extra={"logprob": -1.0, "logprob_tokens": 10}),
        ChatResult(narration(f"How about {p}? The tyres are new."), extra={"logprob": -8.0, "logprob_tokens": 10}),
        ChatResult(narration(f"{p} is fair, it rides great."), extra={"logprob": -5.0, "logprob_tokens": 10}),
    ])
    agent = LLMAgent("s", backend, policy=policy, candidates=3, sampling=Sampling(seed=0))
    turn = await agent.respond(hybrid_state(scenario))
    assert not turn.fallback and turn.utterance == f"{p} is fair, it rides great."  # most likely passing
    assert len(backend.calls) == 3 and len({c.sampling.seed for c in backend.calls}) == 3


async def test_the_agent_checks_a_candidate_against_the_listing_s_price(scenario):
    """The seller opens at the listing's price, so the likeliest candidate's "come down to" it
    contradicts the move: the agent gives the checks the scenario's listing (where the seller
    stands before naming a price), and the next passing candidate is said."""
    policy = ConcessionPolicy("fair", seed=0)
    plan = policy.plan(hybrid_state(scenario))
    assert plan.price == scenario.listing_price
    p = f"${plan.price:,.0f}"
    backend = FakeBackend([
        ChatResult(narration(f"I can come down to {p} for you."), extra={"logprob": -1.0, "logprob_tokens": 10}),
        ChatResult(narration(f"How about {p}? The tyres are new."), extra={"logprob": -8.0, "logprob_tokens": 10}),
    ])
    agent = LLMAgent("s", backend, policy=policy, candidates=2, sampling=Sampling(seed=0))
    turn = await agent.respond(hybrid_state(scenario))
    assert not turn.fallback and turn.utterance == f"How about {p}? The tyres are new."


async def test_pick_first_says_the_first_passing_candidate_and_draws_no_more(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    plan = policy.plan(hybrid_state(scenario))
    p = f"${plan.price:,.0f}"
    backend = FakeBackend([
        ChatResult(narration(f"I can offer {p} for your item in the ."), extra={"logprob": -1.0, "logprob_tokens": 10}),
        ChatResult(narration(f"How about {p}? The tyres are new."), extra={"logprob": -8.0, "logprob_tokens": 10}),
        ChatResult(narration(f"{p} is fair, it rides great."), extra={"logprob": -5.0, "logprob_tokens": 10}),
    ])
    agent = LLMAgent("s", backend, policy=policy, candidates=3, sampling=Sampling(seed=0), pick="first")
    turn = await agent.respond(hybrid_state(scenario))
    assert not turn.fallback and turn.utterance == f"How about {p}? The tyres are new."
    assert len(backend.calls) == 2  # the broken first, the passing second; the third not drawn
    with pytest.raises(ValueError, match="pick"):
        LLMAgent("s", backend, policy=policy, candidates=3, pick="best")


async def test_the_sentence_budget_reaches_the_grammar_the_model_is_asked_with(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    p = f"${policy.plan(hybrid_state(scenario)).price:,.0f}"
    for sentences in (None, 1):
        backend = FakeBackend([ChatResult(narration(f"{p} is fair."),
                                          extra={"logprob": -1.0, "logprob_tokens": 4})] * 2)
        agent = LLMAgent("s", backend, policy=policy, candidates=2, sampling=Sampling(seed=0),
                         sentences=sentences)
        await agent.respond(hybrid_state(scenario))
        pattern = backend.calls[0].schema["properties"]["utterance"]["pattern"]
        assert bool(re.match(pattern, f"How about {p}? It is new.")) is (sentences is None)
    with pytest.raises(ValueError, match="sentences"):
        LLMAgent("s", backend, policy=policy, candidates=2, sentences=3)


class TogetherBackend(FakeBackend):
    """A backend that decodes one seat's requests together (as llamacpp-batched does): records
    how many calls were in flight at once."""

    decodes_together = True

    def __init__(self, replies, steps=None):
        super().__init__(replies)
        self.steps = list(steps or [])  # each call's decode steps (of 10 ms), in call order
        self.in_flight = self.most_in_flight = self.cancelled = 0

    async def chat(self, messages, **kwargs):
        steps = self.steps.pop(0) if self.steps else 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01 * steps)  # the decode steps the calls share
            return await super().chat(messages, **kwargs)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


def _three_candidates(p):
    return [
        ChatResult(narration(f"I can offer {p} for your item in the ."), extra={"logprob": -1.0, "logprob_tokens": 10}),
        ChatResult(narration(f"How about {p}? The tyres are new."), extra={"logprob": -8.0, "logprob_tokens": 10}),
        ChatResult(narration(f"{p} is fair, it rides great."), extra={"logprob": -5.0, "logprob_tokens": 10}),
    ]


@pytest.mark.parametrize("pick, said, drawn, at_once", [
    ("likeliest", "{p} is fair, it rides great.", 3, 3),
    ("first", "How about {p}? The tyres are new.", 2, 1),
])
async def test_candidates_are_asked_at_once_where_the_backend_decodes_them_together(
        scenario, pick, said, drawn, at_once):
    policy = ConcessionPolicy("fair", seed=0)
    p = f"${policy.plan(hybrid_state(scenario)).price:,.0f}"
    backend = TogetherBackend(_three_candidates(p))
    agent = LLMAgent("s", backend, policy=policy, candidates=3, sampling=Sampling(seed=0), pick=pick)
    turn = await agent.respond(hybrid_state(scenario))
    assert not turn.fallback and turn.utterance == said.format(p=p)
    assert len(backend.calls) == drawn and backend.most_in_flight == at_once
    # each candidate keeps its own seed, as when drawn one after another
    assert [c.sampling.seed for c in backend.calls] == [0, 1009, 2018][:drawn]


@pytest.mark.parametrize("together", [False, True])
@pytest.mark.parametrize("pick, said", [("likeliest", "Honestly, I could do {p} then."),
                                        ("shortest", "{p} works.")])
async def test_pick_shortest_says_the_shortest_passing_candidate(scenario, together, pick, said):
    """Read blind, the narrator's lines read less sensible the longer they run (docs/narration.md):
    ``pick = "shortest"`` says the shortest that passes, brief ones first, ties by likelihood."""
    policy = ConcessionPolicy("fair", seed=0)
    p = f"${policy.plan(hybrid_state(scenario)).price:,.0f}"
    replies = [ChatResult(narration(f"Honestly, I could do {p} then."),
                          extra={"logprob": -1.0, "logprob_tokens": 10}),
               ChatResult(narration(f"{p} works."), extra={"logprob": -9.0, "logprob_tokens": 10}),
               ChatResult(narration(f"I can do {p} for your item in the ."),  # shorter, fails
                          extra={"logprob": -1.0, "logprob_tokens": 10})]
    backend = TogetherBackend(replies) if together else FakeBackend(replies)
    agent = LLMAgent("s", backend, policy=policy, candidates=3, sampling=Sampling(seed=0), pick=pick,
                     sentences=1)
    turn = await agent.respond(hybrid_state(scenario))
    assert not turn.fallback and turn.utterance == said.format(p=p)
    assert len(backend.calls) == 3


async def test_a_failing_candidate_asked_at_once_fails_the_turn_and_stops_the_others(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    p = f"${policy.plan(hybrid_state(scenario)).price:,.0f}"
    backend = TogetherBackend([ModelError("fake: the model server went away"),
                               narration(f"How about {p}?"), narration(f"{p} is fair.")],
                              steps=[1, 10_000, 10_000])
    agent = LLMAgent("s", backend, policy=policy, candidates=3, sampling=Sampling(seed=0))
    turn = await agent.respond(hybrid_state(scenario))
    assert turn.fallback and turn.model_failed and "went away" in (turn.guard or "")
    assert backend.cancelled == 2 and backend.in_flight == 0  # the others were not waited for


async def test_no_passing_candidate_falls_back_to_a_template(scenario):
    policy = ConcessionPolicy("fair", seed=0)
    plan = policy.plan(hybrid_state(scenario))
    bad = narration(f"The price is ${plan.price:,.0f}. No other price specified.")
    agent = LLMAgent("s", FakeBackend([bad, bad]), policy=policy, candidates=2)
    turn = await agent.respond(hybrid_state(scenario))
    assert turn.fallback and "instruction_echo" in turn.guard and turn.price == plan.price


def test_picking_up_a_rental_is_off_topic():
    line = "Great, I will pick it up at $1,350 for cash"
    assert "off_topic" in {f.check for f in narration_findings(
        line, Act.COUNTER_PRICE, Role.BUYER, price=1350, category="housing", title="2 bedroom apartment")}
    assert narration_findings(line, Act.COUNTER_PRICE, Role.BUYER, price=1350, title="Road bike") == []


async def test_one_sentence_prefers_a_narration_that_says_little_around_its_price(scenario):
    """With sentences = 1 a passing candidate that says little around its price (BRIEF_BEFORE_PRICE,
    BRIEF_AFTER_PRICE) is said before a likelier one that runs on; without the budget, the
    likeliest."""
    policy = ConcessionPolicy("fair", seed=0)
    p = f"${policy.plan(hybrid_state(scenario)).price:,.0f}"
    replies = [
        ChatResult(narration(f"I can do {p} and I can go that far if you are willing."),
                   extra={"logprob": -2.0, "logprob_tokens": 10}),
        ChatResult(narration(f"I can do {p} for it."), extra={"logprob": -6.0, "logprob_tokens": 10}),
    ]
    for sentences, said in ((1, f"I can do {p} for it."),
                            (None, f"I can do {p} and I can go that far if you are willing.")):
        agent = LLMAgent("s", FakeBackend(list(replies)), policy=policy, candidates=2,
                         sampling=Sampling(seed=0), sentences=sentences)
        turn = await agent.respond(hybrid_state(scenario))
        assert not turn.fallback and turn.utterance == said
    # ... and so is one that says little before its price (the demo's buyer, before this rule)
    long_before = ChatResult(narration(f"I am interested in it too, but I'm not sure if you have any "
                                       f"other adapters for {p}."), extra={"logprob": -1.0, "logprob_tokens": 10})
    agent = LLMAgent("s", FakeBackend([long_before, replies[1]]), policy=policy, candidates=2,
                     sampling=Sampling(seed=0), sentences=1)
    assert (await agent.respond(hybrid_state(scenario))).utterance == f"I can do {p} for it."
    # a run-on candidate is still said when it is the only one that passes
    broken = ChatResult(narration(f"I can offer {p} for your item in the ."),
                        extra={"logprob": -1.0, "logprob_tokens": 10})
    agent = LLMAgent("s", FakeBackend([replies[0], broken]), policy=policy, candidates=2,
                     sampling=Sampling(seed=0), sentences=1)
    turn = await agent.respond(hybrid_state(scenario))
    assert not turn.fallback and turn.utterance == f"I can do {p} and I can go that far if you are willing."


def test_around_price():
    assert around_price("I can do $65 for it.", 65) == ("I can do", "for it")
    assert around_price("$1,200 and it's yours!", 1200) == ("", "and it's yours")
    assert around_price("Deal, thanks!", 13.5) == ("", "")  # an accept that leaves the price out
