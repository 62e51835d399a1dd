"""Attention probing: which heads attend from prices to negotiation verbs, as AgreeMate did.

The paper fed one negotiation to each model and looked at the attention maps: in layer 1,
head 3 of its Llama-3.2-3B models attended from the dialogue to verbs of monetary
transaction, and in layer 2, head 14 attended from prices ("I can do $7") back to "sell" in
earlier turns, more strongly in the buyer fine-tune than in the seller's. This module measures
that for any llama-family model and transcript:

    mass[l, h] = mean over price tokens i of  sum over verb tokens j before i of  A_lh[i, j]

where A_lh is the softmax attention of layer l, head h (each row sums to 1), price tokens are
the tokens of numbers and $ amounts, and verb tokens the tokens of words from a verb list
(``sell``, ``offer``, ``pay``, ``take``, ... with their -s/-ed/-ing forms), matched as words.
Price tokens with no verb before them are left out (there is nothing they could attend to).
``cross_turn`` counts only verbs of earlier turns (the paper's "long distance relationships
across responses"), and ``lift`` divides the mass by what a head that spread its attention
evenly over the visible tokens would give, so heads are compared on more than the verbs'
share of the text.

    haggle probe --model embedded --transcript match.json --heatmap head.png
    haggle probe --model adapters/buyer-3B/buyer-3B.Q4_K_M.gguf --transcript t.txt \\
        --compare adapters/seller-3B/seller-3B.Q4_K_M.gguf --head 2.14

Attention weights need the eager attention implementation (fused kernels never materialise
them), so the model is switched to it after loading.
"""

from __future__ import annotations

import json
import logging
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bot.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Verbs of a transaction, as the paper's probing found them attended to; irregular past forms
# are listed because the regular endings are generated (see verb_pattern).
DEFAULT_VERBS = ("sell", "sold", "buy", "bought", "offer", "pay", "paid", "take", "took",
                 "give", "gave", "accept", "meet", "do")
PRICE = re.compile(r"\$\s?\d+(?:,\d{3})*(?:\.\d+)?|\b\d+(?:,\d{3})*(?:\.\d+)?\b")
SPEAKER = re.compile(r"^\s*(buyer|seller)\s*:\s*", re.IGNORECASE)


# --------------------------------------------------------------------------- transcripts


@dataclass(frozen=True)
class Transcript:
    """The text a model reads: one line per turn, ``Buyer: ...`` / ``Seller: ...``."""

    lines: tuple[str, ...]
    source: str

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def turn_spans(self) -> list[tuple[int, int]]:
        """(start, end) character offsets of each turn's line in ``text``."""
        spans, start = [], 0
        for line in self.lines:
            spans.append((start, start + len(line)))
            start += len(line) + 1
        return spans


def read_transcript(path: str | Path) -> Transcript:
    """A transcript from a JSON negotiation record (``haggle match --json``, ``haggle play
    --json``: its ``turns``' roles and utterances) or a text file (one turn a line; lines
    such as ``Buyer: ...`` keep their speaker, as in the AgreeMate runs' transcripts)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"transcript {path} does not exist; write one with `haggle match --json "
                        f"> match.json` or give a text file with one turn a line")
    raw = path.read_text(encoding="utf-8")
    if raw.lstrip().startswith("{"):
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        turns = record.get("turns") if isinstance(record, dict) else None
        if not isinstance(turns, list) or not turns:
            raise DataError(f"{path}: a JSON transcript needs a non-empty \"turns\" list (the "
                            f"record `haggle match --json` prints)")
        lines = []
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or not isinstance(turn.get("utterance"), str):
                raise DataError(f"{path}: turns[{i}] has no \"utterance\" text")
            if turn["utterance"].strip():
                role = str(turn.get("role", "")).capitalize() or "Speaker"
                lines.append(f"{role}: {' '.join(turn['utterance'].split())}")
    else:
        lines = []
        for line in raw.splitlines():
            line = " ".join(line.split())
            if line:
                match = SPEAKER.match(line)
                lines.append(f"{match.group(1).capitalize()}: {line[match.end():]}"
                             if match else line)
    if not lines:
        raise DataError(f"{path}: the transcript has no text")
    return Transcript(tuple(lines), str(path))


def verb_pattern(verbs: Sequence[str]) -> re.Pattern[str]:
    """Whole words: each verb with -s, -es, -ed, -d, -ing (and take -> taking)."""
    forms: set[str] = set()
    for verb in verbs:
        verb = verb.strip().lower()
        if not verb.isalpha():
            raise ConfigError(f"--verbs: {verb!r} is not a word; give words separated by commas, "
                              f"e.g. sell,offer,pay,take")
        forms |= {verb, verb + "s", verb + "es", verb + "ed", verb + "d", verb + "ing"}
        if verb.endswith("e"):
            forms.add(verb[:-1] + "ing")
    if not forms:
        raise ConfigError("--verbs: give at least one verb")
    alternatives = "|".join(sorted(forms, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


# --------------------------------------------------------------------------- tokens


@dataclass
class Encoded:
    """A tokenised transcript and which of its tokens are prices and verbs."""

    input_ids: torch.Tensor       # [1, T]
    pieces: list[str]             # each token's text, as it appears in the transcript
    turn_of: list[int]            # the turn (line) each token belongs to; -1 for specials
    prices: list[int]             # token positions inside a price
    verbs: list[int]              # token positions inside a verb
    words: dict[int, str]         # position -> the whole price or verb it belongs to
    spans: dict[int, int]         # position -> which occurrence of a price or verb (its start)

    @property
    def tokens(self) -> int:
        return self.input_ids.shape[1]


def _overlapping(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int, str]]
                 ) -> tuple[list[int], dict[int, str], dict[int, int]]:
    positions, words, starts = [], {}, {}
    for pos, (start, end) in enumerate(offsets):
        if end <= start:  # special tokens have no characters
            continue
        for s, e, word in spans:
            if start < e and end > s:
                positions.append(pos)
                words[pos] = word
                starts[pos] = s
                break
    return positions, words, starts


def encode(tokenizer: Any, transcript: Transcript, verbs: Sequence[str] = DEFAULT_VERBS) -> Encoded:
    """Tokenise (with the model's special tokens, as it reads text) and find the price and
    verb tokens by character offsets: a token belongs to a word it overlaps."""
    text = transcript.text
    enc = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    offsets = [tuple(int(x) for x in pair) for pair in enc["offset_mapping"][0].tolist()]
    price_spans = [(m.start(), m.end(), m.group(0)) for m in PRICE.finditer(text)]
    verb_spans = [(m.start(), m.end(), m.group(0)) for m in verb_pattern(verbs).finditer(text)]
    prices, price_words, price_starts = _overlapping(offsets, price_spans)
    verb_positions, verb_words, verb_starts = _overlapping(offsets, verb_spans)
    if not prices:
        raise DataError(f"{transcript.source}: the transcript names no price (no number or $ "
                        f"amount), so there is nothing to probe from")
    if not verb_positions:
        raise DataError(f"{transcript.source}: none of the verbs {', '.join(verbs)} occurs in "
                        f"the transcript; pass --verbs with words it uses")
    starts = [s for s, _ in transcript.turn_spans()]
    # A token belongs to the line it starts in (a leading newline or space included).
    turn_of = [-1 if end <= start else max(0, bisect_right(starts, start) - 1)
               for start, end in offsets]
    return Encoded(input_ids=enc["input_ids"], pieces=[text[s:e] for s, e in offsets],
                   turn_of=turn_of, prices=prices, verbs=verb_positions,
                   words={**price_words, **verb_words}, spans={**price_starts, **verb_starts})


# --------------------------------------------------------------------------- attention


def attention_maps(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Every layer's attention weights for one sequence: [layers, heads, T, T], float32, CPU."""
    model.set_attn_implementation("eager")  # fused kernels return no weights
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(input_ids=input_ids.to(device), output_attentions=True, use_cache=False)
    if not out.attentions or out.attentions[0] is None:
        raise ConfigError("the model returned no attention weights; it needs the eager "
                          "attention implementation")
    return torch.stack([a[0].float().cpu() for a in out.attentions])


@dataclass
class Mass:
    """Attention mass from price tokens to verb tokens, per layer and head."""

    mass: torch.Tensor        # [layers, heads]: all earlier verbs
    cross_turn: torch.Tensor  # [layers, heads]: verbs of earlier turns only
    uniform: float            # the mass of a head attending evenly to every visible token
    price_tokens: int         # price tokens with at least one verb before them

    @property
    def lift(self) -> torch.Tensor:
        return self.mass / self.uniform


def attention_mass(att: torch.Tensor, enc: Encoded) -> Mass:
    """Mean over price tokens (with a verb before them) of the attention they pay to verbs."""
    prices = torch.tensor(enc.prices)
    verbs = torch.tensor(enc.verbs)
    turn = torch.tensor(enc.turn_of)
    before = verbs[None, :] < prices[:, None]                        # [P, V]: causal mask
    earlier_turn = before & (turn[verbs][None, :] < turn[prices][:, None])
    seen = before.any(dim=1)                                         # prices with a verb before
    if not bool(seen.any()):
        raise DataError("no price comes after a verb in the transcript: reorder it or pass "
                        "--verbs with words that come before its prices")
    block = att[:, :, prices][:, :, :, verbs]                        # [L, H, P, V]
    mass = (block * before).sum(-1)[:, :, seen].mean(-1)
    cross = (block * earlier_turn).sum(-1)[:, :, seen].mean(-1)
    # A head that spreads a row evenly gives each of the i + 1 visible tokens 1 / (i + 1).
    uniform = (before.sum(1).float() / (prices + 1).float())[seen].mean()
    return Mass(mass=mass, cross_turn=cross, uniform=float(uniform),
                price_tokens=int(seen.sum()))


@dataclass
class ProbeResult:
    model: str
    transcript: Transcript
    encoded: Encoded
    mass: Mass
    layers: int
    heads: int
    attentions: torch.Tensor | None = field(default=None, repr=False)  # kept on request

    def top(self, n: int = 10) -> list[tuple[int, int, float, float, float]]:
        """The ``n`` heads with the most mass: (layer, head, mass, cross-turn mass, lift)."""
        flat = self.mass.mass.flatten()
        order = torch.argsort(flat, descending=True)[:n]
        out = []
        for k in order.tolist():
            layer, head = divmod(k, self.heads)
            out.append((layer, head, float(self.mass.mass[layer, head]),
                        float(self.mass.cross_turn[layer, head]),
                        float(self.mass.lift[layer, head])))
        return out

    def head_map(self, layer: int, head: int) -> torch.Tensor:
        """[price tokens, verb tokens] attention of one head (NaN where the verb comes later)."""
        if self.attentions is None:
            raise ValueError("probe(..., keep_attentions=True) keeps the maps a heatmap needs")
        prices, verbs = torch.tensor(self.encoded.prices), torch.tensor(self.encoded.verbs)
        block = self.attentions[layer, head][prices][:, verbs].clone()
        block[~(verbs[None, :] < prices[:, None])] = float("nan")
        return block

    def word_map(self, layer: int, head: int) -> tuple[list[list[int]], list[list[int]],
                                                       torch.Tensor]:
        """The head's attention per word: price words (rows) x verb words (columns), each cell
        the mean over the price word's tokens of the attention summed over the verb word's
        earlier tokens (NaN where none comes earlier). Returns (price word token groups, verb
        word token groups, [rows, columns])."""
        def groups(positions: Sequence[int]) -> list[list[int]]:
            by_span: dict[int, list[int]] = {}
            for p in positions:
                by_span.setdefault(self.encoded.spans[p], []).append(p)
            return list(by_span.values())

        rows, cols = groups(self.encoded.prices), groups(self.encoded.verbs)
        att = self.head_map(layer, head)  # NaN where the verb token comes later
        index = {p: k for k, p in enumerate(self.encoded.prices)}
        vindex = {p: k for k, p in enumerate(self.encoded.verbs)}
        out = torch.full((len(rows), len(cols)), float("nan"))
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                block = att[[index[p] for p in row]][:, [vindex[p] for p in col]]
                if bool(torch.isfinite(block).any()):
                    out[i, j] = torch.nan_to_num(block).sum(1).mean()
        return rows, cols, out

    def to_dict(self, n: int = 10) -> dict[str, Any]:
        return {"model": self.model, "transcript": self.transcript.source,
                "layers": self.layers, "heads": self.heads, "tokens": self.encoded.tokens,
                "price_tokens": len(self.encoded.prices),
                "price_tokens_with_a_verb_before": self.mass.price_tokens,
                "verb_tokens": len(self.encoded.verbs), "uniform_mass": self.mass.uniform,
                "top": [{"layer": lay, "head": h, "mass": m, "cross_turn": c, "lift": lift}
                        for lay, h, m, c, lift in self.top(n)],
                "mass": self.mass.mass.tolist(), "cross_turn": self.mass.cross_turn.tolist()}


def parse_head(text: str) -> tuple[int, int]:
    """``"1.3"`` -> (1, 3): layer 1, head 3, counting from 0 as the paper did."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
    if not match:
        raise ConfigError(f"--head {text!r}: give LAYER.HEAD, counting from 0, e.g. 1.3")
    return int(match.group(1)), int(match.group(2))


def check_head(result: ProbeResult, layer: int, head: int) -> None:
    if not (0 <= layer < result.layers and 0 <= head < result.heads):
        raise ConfigError(f"--head {layer}.{head}: {result.model} has layers 0-{result.layers - 1}"
                          f" and heads 0-{result.heads - 1}")


def probe(loaded: Any, transcript: Transcript, verbs: Sequence[str] = DEFAULT_VERBS, *,
          keep_attentions: bool = False) -> ProbeResult:
    """Run ``loaded`` (training.modeling.Loaded) on the transcript and measure every head."""
    enc = encode(loaded.tokenizer, transcript, verbs)
    att = attention_maps(loaded.model, enc.input_ids)
    mass = attention_mass(att, enc)
    return ProbeResult(model=loaded.ref, transcript=transcript, encoded=enc, mass=mass,
                       layers=att.shape[0], heads=att.shape[1],
                       attentions=att if keep_attentions else None)


def load(ref: str, device: str | None = None) -> Any:
    from training.modeling import load_model

    return load_model(ref, device=device)


# --------------------------------------------------------------------------- report


def format_report(results: Sequence[ProbeResult], n: int = 10) -> str:
    """The top heads of each model side by side, and how alike the models' heads are."""
    first = results[0]
    enc = first.encoded
    prices = sorted({enc.words[p] for p in enc.prices})
    verbs = sorted({enc.words[p].lower() for p in enc.verbs})
    shown = ", ".join(prices[:12]) + (", ..." if len(prices) > 12 else "")
    lines = [(f"transcript {first.transcript.source}: {len(first.transcript.lines)} turns, "
              f"{enc.tokens} tokens; {len(enc.prices)} price tokens ({shown}), "
              f"{len(enc.verbs)} verb tokens ({', '.join(verbs)})"),
             ("mass = mean over price tokens of the attention they pay to earlier verb tokens; "
              "cross = verbs of earlier turns only; lift = mass / a head attending evenly"), ""]
    columns = []
    for r in results:
        title = (f"{r.model} ({r.layers} layers x {r.heads} heads; even attention = "
                 f"{r.mass.uniform:.4f})")
        rows = [title,
                f"{'#':>2}  {'head':>6}  {'mass':>7}  {'cross':>7}  {'lift':>6}"]
        for rank, (layer, head, m, c, lift) in enumerate(r.top(n), 1):
            rows.append(f"{rank:>2}  {f'{layer}.{head}':>6}  {m:7.4f}  {c:7.4f}  {lift:6.2f}")
        columns.append(rows)
    width = max(len(row) for col in columns for row in col) + 4
    for i in range(max(len(c) for c in columns)):
        lines.append("".join((col[i] if i < len(col) else "").ljust(width)
                             for col in columns).rstrip())
    if len(results) == 2:
        a, b = results
        if a.mass.mass.shape == b.mass.mass.shape:
            x, y = a.mass.mass.flatten(), b.mass.mass.flatten()
            corr = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
            lines += ["", (f"same architecture: correlation of the two models' head masses "
                           f"{corr:.3f}; the first model's top heads in both:")]
            lines.append(f"{'head':>6}  {'mass A':>7}  {'mass B':>7}  {'B - A':>7}")
            for layer, head, m, _, _ in a.top(n):
                other = float(b.mass.mass[layer, head])
                lines.append(f"{f'{layer}.{head}':>6}  {m:7.4f}  {other:7.4f}  {other - m:+7.4f}")
        else:
            lines += ["", "different architectures: heads are not comparable one to one"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- heatmap


def _label(enc: Encoded, group: Sequence[int]) -> str:
    """``$40 (T2)``: a price or verb and its turn ($ escaped for matplotlib's mathtext)."""
    return f"{enc.words[group[0]]} (T{enc.turn_of[group[0]] + 1})".replace("$", r"\$")


def write_heatmap(results: Sequence[ProbeResult], heads: Sequence[tuple[int, int]],
                  path: str | Path) -> Path:
    """One row of two panels per model: every head's mass (layer x head, the chosen head
    boxed, the top five numbered) and the chosen head's attention from each price (rows) to
    each verb (columns) of the transcript, word by word, values printed in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    maps = [r.word_map(layer, head) for r, (layer, head) in zip(results, heads, strict=False)]
    n_p, n_v = len(maps[0][0]), len(maps[0][1])
    cell = 0.45
    map_w, map_h = max(4.5, 2.4 + cell * n_v), max(3.2, 1.8 + cell * n_p)
    grid_w = max(3.2, 1.4 + 0.32 * results[0].heads)
    row_h = max(map_h, 1.2 + 0.16 * results[0].layers)
    fig, axes = plt.subplots(len(results), 2, squeeze=False,
                             figsize=(grid_w + map_w + 2.4, row_h * len(results) + 0.4),
                             gridspec_kw={"width_ratios": [grid_w, map_w]})
    for (ax_grid, ax_map), r, (layer, head), (rows, cols, words) in zip(axes, results, heads,
                                                                        maps, strict=False):
        masses = r.mass.mass.numpy()
        im = ax_grid.imshow(masses, aspect="auto", cmap="viridis", interpolation="nearest")
        ax_grid.set_xlabel("head")
        ax_grid.set_ylabel("layer")
        ax_grid.set_yticks(range(0, r.layers, max(1, r.layers // 16)))
        ax_grid.set_xticks(range(0, r.heads, max(1, r.heads // 12)))
        for rank, (lay, h, *_rest) in enumerate(r.top(5), 1):
            ax_grid.text(h, lay, str(rank), ha="center", va="center", fontsize=7,
                         color="white", fontweight="bold")
        ax_grid.add_patch(Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False,
                                    edgecolor="red", linewidth=2))
        fig.colorbar(im, ax=ax_grid, fraction=0.05, pad=0.02, label="mass price -> verbs")
        ax_grid.set_title(f"{_short(r.model)}\nmass per head (1-5: top heads, red: shown)",
                          loc="left", fontsize=9)

        block = words.numpy()
        cmap = matplotlib.colormaps["magma_r"].with_extremes(bad="#e8e8e8")
        vmax = float(np.nanmax(block)) if np.isfinite(block).any() else 1.0
        im2 = ax_map.imshow(np.ma.masked_invalid(block), cmap=cmap, vmin=0.0,
                            vmax=max(vmax, 1e-6), aspect="auto", interpolation="nearest")
        ax_map.set_xticks(range(len(cols)), [_label(r.encoded, g) for g in cols],
                          rotation=45, ha="right", fontsize=8)
        ax_map.set_yticks(range(len(rows)), [_label(r.encoded, g) for g in rows], fontsize=8)
        if block.size <= 600:
            for i in range(block.shape[0]):
                for j in range(block.shape[1]):
                    if np.isfinite(block[i, j]):
                        value = float(block[i, j])
                        ax_map.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                                    color="white" if value > 0.6 * vmax else "black")
        fig.colorbar(im2, ax=ax_map, fraction=0.05, pad=0.02, label="attention weight")
        ax_map.set_xlabel("verbs (T = turn)")
        ax_map.set_ylabel("prices")
        ax_map.set_title(f"layer {layer}, head {head}: attention from prices (rows) to verbs "
                         f"(columns); mass {float(r.mass.mass[layer, head]):.3f}, lift "
                         f"{float(r.mass.lift[layer, head]):.1f}\nper word: mean over the "
                         f"price's tokens of the attention summed over the verb's tokens; grey ="
                         f" verb comes later", loc="left", fontsize=8.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _short(ref: str, width: int = 60) -> str:
    return ref if len(ref) <= width else "..." + ref[-(width - 3):]
