"""Every reply schema the agents send compiles into a llama.cpp grammar.

A schema llama.cpp cannot parse would let a model answer unconstrained, so each one the
agents can produce (every act, role and price format, with and without chain of thought) is
compiled here against the embedded model's vocabulary (vocab only: fast)."""

import json
import re

import pytest

from bot.negotiation.prompts import REPLY_ACTS, narration_pattern, narration_schema, reply_schema
from bot.negotiation.turns import Act, Role

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def compiles():
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from bot.llm.models import embedded_model_path

    llm = llama_cpp.Llama(str(embedded_model_path()), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    def check(schema) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, json_schema_to_gbnf(json.dumps(schema)).encode(), b"root")
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    yield check
    llm.close()


def test_a_broken_schema_is_detected(compiles):
    assert not compiles({"type": "object", "properties": {"u": {"type": "string", "pattern": "^\\$1$"}}})


@pytest.mark.parametrize("cot", [False, True])
def test_reply_schemas_compile(compiles, cot):
    assert compiles(reply_schema(cot=cot))
    assert compiles(reply_schema(cot=cot, acts=[Act.INQUIRE, Act.INTRO]))


@pytest.mark.parametrize("act", REPLY_ACTS)
@pytest.mark.parametrize("role", list(Role))
def test_narration_schemas_compile(compiles, act, role):
    for price in (None, 7.5, 45, 1200, 14500.25):
        assert compiles(narration_schema(act=act, price=price, role=role, cot=role is Role.BUYER))
        assert compiles(narration_schema(act=act, price=price, role=role, sentences=1))


def test_narration_pattern_states_the_price_once_where_people_put_it():
    pattern = narration_pattern(Act.COUNTER_PRICE, 1200, Role.SELLER)
    assert re.match(pattern, "How about $1,200? It's barely used.")
    assert re.match(pattern, "$1,200 and it's yours, it's barely used")
    assert re.match(pattern, "it's barely used, so I could do $1,200")
    assert not re.match(pattern, "How about $1,200? Or $1,100.")
    assert not re.match(pattern, "It's barely used.")  # the price must be stated
    assert not re.match(pattern, "How about $1,200, that's ¼ off.")
    assert not re.match(pattern, 'How about $1,200" and more')
    assert re.match(narration_pattern(Act.INQUIRE, None, Role.BUYER), "Does it still work?")
    assert re.match(narration_pattern(Act.INQUIRE, None, Role.BUYER), "Hi! Is it still available? I'm nearby.")
    assert not re.match(narration_pattern(Act.INQUIRE, None, Role.BUYER), "I'm nearby.")
    assert re.match(narration_pattern(Act.ACCEPT, 7.5, Role.BUYER), "Deal, $7.50 works.")


def test_a_one_sentence_budget_keeps_a_priced_move_to_the_sentence_that_states_it():
    one = narration_pattern(Act.COUNTER_PRICE, 13.5, Role.SELLER, sentences=1)
    assert re.match(one, "I can do $13.50 for it.")
    assert re.match(one, "$13.50 and it's yours!")
    assert re.match(one, "How about $13.50")
    assert not re.match(one, "How about $13.50? It is barely used.")  # a second sentence after
    assert not re.match(one, "Hi. How about $13.50?")                 # ... or before the price
    assert re.match(one, "I can do $13.50!!") and not re.match(one, "I can do $13.50.!")
    assert re.match(narration_pattern(Act.COUNTER_PRICE, 13.5, Role.SELLER),
                    "How about $13.50? It is barely used.")            # as people write
    accept = narration_pattern(Act.ACCEPT, 13.5, Role.BUYER, sentences=1)
    assert re.match(accept, "Deal, $13.50 works for me!") and re.match(accept, "Deal, thanks.")
    assert not re.match(accept, "Deal. See you tomorrow.")
    # the budget is for what carries the move: an inquiry may still greet first
    assert re.match(narration_pattern(Act.INQUIRE, None, Role.BUYER, sentences=1),
                    "Hi! Is it still available?")
    with pytest.raises(ValueError, match="sentences"):
        narration_pattern(Act.COUNTER_PRICE, 13.5, Role.SELLER, sentences=2)
