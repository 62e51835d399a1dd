"""`haggle probe`: transcripts, price and verb tokens, and the attention mass from prices to
verbs checked against a direct computation on the embedded model's attention tensors.

The model test loads SmolLM2-135M through transformers once (about half a minute here).
"""

from __future__ import annotations

import json
import math
from statistics import fmean

import pytest

pytest.importorskip("transformers")

from bot.cli import main
from bot.errors import ConfigError, DataError
from training.probe import (
    format_report,
    parse_head,
    probe,
    read_transcript,
    verb_pattern,
    write_heatmap,
)

TRANSCRIPT = ("Buyer: Is it still listed at $60?\n"
              "Seller: Yes. I would sell it to you for $55, it is nearly new.\n"
              "Buyer: I will pay 45 in cash if you take it to my car.\n"
              "Seller: Fine, I accept $50.\n")


@pytest.fixture
def transcript_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TRANSCRIPT)
    return path


def test_text_and_json_transcripts(tmp_path, transcript_file):
    text = read_transcript(transcript_file)
    assert text.lines[0] == "Buyer: Is it still listed at $60?" and len(text.lines) == 4
    tabbed = tmp_path / "agreemate.txt"
    tabbed.write_text("\tbuyer:  Hi there\n\n\tSELLER: It is $5.\n")
    assert read_transcript(tabbed).lines == ("Buyer: Hi there", "Seller: It is $5.")
    record = tmp_path / "match.json"
    record.write_text(json.dumps({"turns": [
        {"role": "buyer", "utterance": "Would you take $80?"},
        {"role": "seller", "utterance": ""},  # an action without words (accept) is skipped
        {"role": "seller", "utterance": "I could  sell for $90."}]}))
    assert read_transcript(record).lines == ("Buyer: Would you take $80?",
                                             "Seller: I could sell for $90.")
    assert read_transcript(record).turn_spans() == [(0, 26), (27, 56)]


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "not valid JSON"),
    ('{"turns": []}', 'needs a non-empty "turns" list'),
    ('{"turns": [{"role": "buyer"}]}', r'turns\[0\] has no "utterance"'),
    ("\n\n", "has no text"),
])
def test_bad_transcripts(tmp_path, content, message):
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_transcript(path)


def test_verbs_match_whole_words_with_their_endings():
    pattern = verb_pattern(["sell", "take", "offer"])
    found = [m.group(0) for m in pattern.finditer(
        "Selling? I sold it. She sells, takes, taking, took; offered offers; reoffer, seller")]
    assert found == ["Selling", "sells", "takes", "taking", "offered", "offers"]
    with pytest.raises(ConfigError, match="not a word"):
        verb_pattern(["sell", "pay up"])


def test_head_argument():
    assert parse_head("1.3") == (1, 3) and parse_head(" 12.0 ") == (12, 0)
    with pytest.raises(ConfigError, match="LAYER.HEAD"):
        parse_head("3")


def test_command_checks_its_input_before_loading_a_model(tmp_path, transcript_file, capsys):
    assert main(["probe", "--model", "embedded", "--transcript", str(tmp_path / "no.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["probe", "--model", "embedded", "--transcript", str(transcript_file),
                 "--head", "x"]) == 2
    assert "LAYER.HEAD" in capsys.readouterr().err


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def loaded():
    from training.modeling import load_model

    return load_model("embedded", device="cpu")


@pytest.mark.train
def test_mass_is_the_attention_from_prices_to_earlier_verbs(loaded, transcript_file, tmp_path):
    import torch

    result = probe(loaded, read_transcript(transcript_file), ("sell", "take", "pay", "accept"),
                   keep_attentions=True)
    enc, att = result.encoded, result.attentions

    # The tokens: every piece of every price and verb, nothing else.
    def words(positions):
        return sorted({enc.words[p] for p in positions})

    assert words(enc.prices) == ["$50", "$55", "$60", "45"]
    assert words(enc.verbs) == ["accept", "pay", "sell", "take"]
    for positions in (enc.prices, enc.verbs):
        for word in words(positions):
            pieces = "".join(enc.pieces[p] for p in positions if enc.words[p] == word)
            assert pieces.strip() == word
    text = read_transcript(transcript_file).text
    offsets = loaded.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    for p in enc.prices + enc.verbs:  # turn = the line the token starts on
        assert enc.turn_of[p] == text[:offsets[p][0]].count("\n")

    # The tensors are the model's attention weights: a fresh forward pass gives the same, and
    # every row is a softmax (sums to 1, nothing after the query).
    with torch.no_grad():
        fresh = loaded.model(input_ids=enc.input_ids, output_attentions=True).attentions
    assert att.shape == (30, 9, enc.tokens, enc.tokens) == (result.layers, result.heads,
                                                             *fresh[0].shape[-2:])
    assert torch.allclose(att, torch.stack([a[0] for a in fresh]), atol=1e-6)
    assert torch.allclose(att.sum(-1), torch.ones(30, 9, enc.tokens), atol=1e-4)
    assert float(att.triu(diagonal=1).abs().max()) == 0.0

    # The mass, computed directly: for each price token with a verb before it, the sum of its
    # attention to those verbs; the mean over such price tokens.
    direct = torch.zeros(30, 9)
    cross = torch.zeros(30, 9)
    counted = [i for i in enc.prices if any(j < i for j in enc.verbs)]
    for layer in range(30):
        for head in range(9):
            a = att[layer, head]
            direct[layer, head] = sum(sum(float(a[i, j]) for j in enc.verbs if j < i)
                                      for i in counted) / len(counted)
            cross[layer, head] = sum(sum(float(a[i, j]) for j in enc.verbs
                                         if enc.turn_of[j] < enc.turn_of[i])
                                     for i in counted) / len(counted)
    assert {enc.words[i] for i in enc.prices if i not in counted} == {"$60"}  # before any verb
    assert result.mass.price_tokens == len(counted)
    assert torch.allclose(result.mass.mass, direct, atol=1e-5)
    assert torch.allclose(result.mass.cross_turn, cross, atol=1e-5)
    assert bool((result.mass.cross_turn <= result.mass.mass + 1e-6).all())
    uniform = sum(sum(1 for j in enc.verbs if j < i) / (i + 1) for i in counted) / len(counted)
    assert math.isclose(result.mass.uniform, uniform, rel_tol=1e-6)

    # What is reported: the top head and its numbers as printed.
    layer, head, mass, _, lift = result.top(1)[0]
    assert mass == pytest.approx(float(direct.max()))
    assert lift == pytest.approx(mass / uniform)
    report = format_report([result, result])
    assert f"{layer}.{head}   {float(direct[layer, head]):.4f}" in report
    assert "correlation of the two models' head masses 1.000" in report

    # The heatmap: a PNG of the chosen head, the masked cells (verbs after the price) NaN.
    block = result.head_map(layer, head)
    assert block.shape == (len(enc.prices), len(enc.verbs))
    i, j = 0, len(enc.verbs) - 1  # the first price comes before the last verb
    assert math.isnan(float(block[i, j]))
    rows, cols, words = result.word_map(layer, head)  # what the heatmap draws
    assert [enc.words[g[0]] for g in rows] == ["$60", "$55", "45", "$50"]
    assert [enc.words[g[0]] for g in cols] == ["sell", "pay", "take", "accept"]
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            visible = [[float(att[layer, head, i, j]) for j in col if j < i] for i in row]
            if any(visible):
                assert float(words[r, c]) == pytest.approx(fmean(sum(v) for v in visible))
            else:
                assert math.isnan(float(words[r, c]))
    png = write_heatmap([result], [(layer, head)], tmp_path / "head.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
