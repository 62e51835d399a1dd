"""The AgreeMate paper's comparisons, over any experiment (bot/experiment.py) and the imported
published runs (bot/agreemate.py), side by side: ``haggle report`` computes them with
``paper_comparisons``; bot/report/tables.py and bot/report/charts.py render them.

Which experiment a negotiation belongs to is read from the agents' metadata (the AgreeMate
importer derives the same fields from the paper's file names), so the rules below apply to
both sources alike:

- scale x CoT: both agents baseline family with the neutral personality (the paper's runs
  without a personality prompt; an experiment's baseline personality);
- personality: both agents baseline family, same model scale and CoT setting;
- role models: both neutral and the same CoT setting, at least one fine-tuned or generalist
  agent, plus baseline-vs-baseline at the role models' scale as the reference row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bot.negotiation.personality import NO_PERSONALITY, personality_rank
from bot.report.stats import scale_value, summarise

if TYPE_CHECKING:
    from bot.store import NegotiationRow

PAPER_METRICS = ("agreed", "aggressiveness", "bias", "dialogue_length", "fairness",
                 "concession_rate", "probing_ratio", "relative_efficiency")
PAPER_LABELS = {"agreed": "agreement", "aggressiveness": "aggressiveness", "bias": "bias",
                "dialogue_length": "dialogue length", "fairness": "fairness",
                "concession_rate": "concession rate", "probing_ratio": "probing ratio",
                "relative_efficiency": "relative efficiency"}
AGREEMATE_SOURCE = "AgreeMate"


def _source(meta: Mapping[str, Any]) -> str | None:
    if meta.get("source") == "agreemate":
        return AGREEMATE_SOURCE
    return meta.get("experiment")


def _neutral(meta: Mapping[str, Any]) -> bool:
    return meta.get("personality") == meta.get("neutral_personality", NO_PERSONALITY)


def _summaries(negs: Sequence[NegotiationRow], keys: Sequence[str] = PAPER_METRICS) -> dict[str, Any]:
    return {k: summarise(n.metrics.get(k) for n in negs) for k in keys}


def _source_order(sources: Sequence[str]) -> list[str]:
    """Experiments first (in the order met), the published runs last: ours beside theirs."""
    return [s for s in sources if s != AGREEMATE_SOURCE] + (
        [AGREEMATE_SOURCE] if AGREEMATE_SOURCE in sources else [])


def paper_comparisons(negotiations: Sequence[NegotiationRow],
                      meta: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """AgreeMate's comparisons as a JSON-ready dict: ``cot``, ``scale``, ``personality``,
    ``roles`` (each empty when the runs do not vary that axis) and the scenario ``note``.

    Published pairings kept in two versions count once, in the ``_updated`` one: the paper's
    CoT table was computed on those files (imported alone, they give its aggressiveness, bias,
    dialogue length and fairness; tests/test_experiment.py checks it). Like for like: when
    experiments and published runs are both present, the published runs count only on the
    scenarios the experiments played.
    """
    tournaments = {n.tournament for n in negotiations}
    rows = []
    for n in negotiations:
        b, s = meta.get(n.buyer), meta.get(n.seller)
        if not b or not s or b.get("kind") != "llm" or s.get("kind") != "llm":
            continue
        source = _source(b)
        if source is None or source != _source(s):
            continue
        if source == AGREEMATE_SOURCE and n.tournament + "_updated" in tournaments:
            continue
        rows.append((n, b, s, source))
    ours = {n.scenario_id for n, _, _, src in rows if src != AGREEMATE_SOURCE}
    theirs = {n.scenario_id for n, _, _, src in rows if src == AGREEMATE_SOURCE}
    note = ""
    if ours and theirs:
        shared = ours & theirs
        if shared:
            rows = [r for r in rows if r[3] != AGREEMATE_SOURCE or r[0].scenario_id in shared]
            note = (f"AgreeMate's published runs are counted on the {len(shared)} scenario(s) "
                    f"the experiments played, like for like.")
        else:
            note = ("The experiments played none of the AgreeMate runs' scenarios: not like for "
                    "like (use scenario_set = \"agreemate\" in the grid).")
    caps = {src: sorted({r[0].max_turns for r in rows if (r[3] == AGREEMATE_SOURCE) == src})
            for src in (True, False)}
    if caps[True] and caps[False] and caps[True] != caps[False]:
        note += (f" Turn caps differ: the experiments {'/'.join(map(str, caps[False]))}, the "
                 f"published runs {'/'.join(map(str, caps[True]))}.")
    sources = _source_order(list(dict.fromkeys(r[3] for r in rows)))
    return {"sources": sources, "note": note.strip(),
            "cot": _paper_cot(rows, sources), "scale": _paper_scale(rows),
            "personality": _paper_personality(rows), "roles": _paper_roles(rows)}


def _scale_cot_block(rows: Sequence[tuple]) -> list[tuple]:
    """Baseline agents with the neutral personality on both sides, at the scales a source ran
    both with and without CoT (the paper's 3B, 8B and 70B; not its lone 1B pairings)."""
    block = [r for r in rows if r[1].get("family") == r[2].get("family") == "baseline"
             and _neutral(r[1]) and _neutral(r[2])]
    both: dict[str, set] = {}
    for source in {r[3] for r in block}:
        seen = {(m.get("scale"), bool(m.get("cot"))) for r in block if r[3] == source
                for m in (r[1], r[2])}
        both[source] = {scale for scale, cot in seen if (scale, not cot) in seen}
    return [r for r in block
            if r[1].get("scale") in both[r[3]] and r[2].get("scale") in both[r[3]]]


def _macro(rows: Sequence[tuple], keys: Sequence[str] = PAPER_METRICS) -> dict[str, Any]:
    """Means of the pairings' means, as the paper averaged its combinations: each pairing
    weighs the same however many of its negotiations define a metric (fairness: deals only).
    ``n`` counts the pairings that define the metric, ``values`` their negotiations."""
    from statistics import fmean

    pairings: dict[tuple, list[Any]] = {}
    for r in rows:
        pairings.setdefault((r[0].tournament, r[0].buyer, r[0].seller), []).append(r[0])
    out = {}
    for key in keys:
        means, values = [], 0
        for negs in pairings.values():
            xs = [float(v) for n in negs if (v := n.metrics.get(key)) is not None]
            if xs:
                means.append(fmean(xs))
                values += len(xs)
        out[key] = {"mean": fmean(means) if means else None, "n": len(means), "values": values}
    return out


def _paper_cot(rows: Sequence[tuple], sources: Sequence[str]) -> list[dict[str, Any]]:
    """Per source: scale x CoT pairings where either agent reasons vs where neither does
    (the paper's table "with and without CoT"), as means of the pairings' means."""
    block = _scale_cot_block(rows)
    out = []
    for source in sources:
        mine = [r for r in block if r[3] == source]
        with_cot = [r for r in mine if r[1].get("cot") or r[2].get("cot")]
        without = [r for r in mine if not (r[1].get("cot") or r[2].get("cot"))]
        if with_cot and without:
            for cot, group in ((True, with_cot), (False, without)):
                out.append({"source": source, "cot": cot, "negotiations": len(group),
                            "pairings": len({(r[0].tournament, r[0].buyer, r[0].seller)
                                             for r in group}),
                            "metrics": _macro(group)})
    return out


def _paper_scale(rows: Sequence[tuple]) -> list[dict[str, Any]]:
    """Per source, seat, the seated agent's scale and CoT setting: the scale x CoT pairings it
    played in that seat, as means of the pairings' means."""
    groups: dict[tuple, list[tuple]] = {}
    for r in _scale_cot_block(rows):
        for seat, m in (("buyer", r[1]), ("seller", r[2])):
            groups.setdefault((r[3], seat, m.get("scale"), bool(m.get("cot"))), []).append(r)
    if len({(k[2], k[3]) for k in groups}) < 2:
        return []
    order = {s: i for i, s in enumerate(_source_order(list(dict.fromkeys(k[0] for k in groups))))}
    keys = sorted(groups, key=lambda k: (k[1] != "buyer", scale_value(k[2]), k[3], order[k[0]]))
    return [{"source": k[0], "seat": k[1], "scale": k[2], "cot": k[3],
             "negotiations": len(groups[k]),
             "pairings": len({(r[0].tournament, r[0].buyer, r[0].seller) for r in groups[k]}),
             "metrics": _macro(groups[k])} for k in keys]


def _paper_personality(rows: Sequence[tuple]) -> list[dict[str, Any]]:
    """Buyer personality x seller personality, per source, scale and CoT setting."""
    groups: dict[tuple, dict[tuple[str, str], list[Any]]] = {}
    for n, b, s, source in rows:
        if not (b.get("family") == s.get("family") == "baseline"
                and b.get("scale") == s.get("scale") and bool(b.get("cot")) == bool(s.get("cot"))
                and b.get("grid_model") == s.get("grid_model")):
            continue
        key = (source, b.get("scale"), bool(b.get("cot")))
        cell = (b.get("personality"), s.get("personality"))
        groups.setdefault(key, {}).setdefault(cell, []).append(n)
    out = []
    order = {s: i for i, s in enumerate(_source_order(list(dict.fromkeys(k[0] for k in groups))))}
    for key in sorted(groups, key=lambda k: (order[k[0]], scale_value(k[1]), k[2])):
        cells = groups[key]
        if len({c[0] for c in cells}) < 2 and len({c[1] for c in cells}) < 2:
            continue  # one personality on each side: nothing to compare
        out.append({"source": key[0], "scale": key[1], "cot": key[2],
                    "buyers": sorted({c[0] for c in cells}, key=personality_rank),
                    "sellers": sorted({c[1] for c in cells}, key=personality_rank),
                    "cells": [{"buyer": c[0], "seller": c[1], "n": len(negs),
                               "metrics": _summaries(negs, ("agreed", "fairness", "bias",
                                                            "dialogue_length"))}
                              for c, negs in sorted(cells.items(), key=lambda kv: (
                                  personality_rank(kv[0][0]), personality_rank(kv[0][1])))]})
    return out


def _paper_roles(rows: Sequence[tuple]) -> list[dict[str, Any]]:
    """Fine-tuned vs base vs generalist: pairings of role models, and baseline vs baseline at
    the role models' scale, per source and CoT setting."""
    neutral = [r for r in rows if _neutral(r[1]) and _neutral(r[2])
               and bool(r[1].get("cot")) == bool(r[2].get("cot"))]
    role_scales = {(r[3], m.get("scale")) for r in neutral for m in (r[1], r[2])
                   if m.get("family") != "baseline"}
    groups: dict[tuple, list[Any]] = {}
    for n, b, s, source in neutral:
        both_base = b.get("family") == s.get("family") == "baseline"
        if both_base and not ((source, b.get("scale")) in role_scales
                              and b.get("scale") == s.get("scale")):
            continue
        key = (source, bool(b.get("cot")), b.get("family"), b.get("scale"), s.get("family"),
               s.get("scale"))
        groups.setdefault(key, []).append(n)
    family_order = {"baseline": 0, "finetune": 1, "generalist": 2}
    order = {s: i for i, s in enumerate(_source_order(list(dict.fromkeys(k[0] for k in groups))))}
    keys = sorted(groups, key=lambda k: (order[k[0]], k[1], family_order.get(k[2], 9),
                                         family_order.get(k[4], 9), scale_value(k[3])))
    out = [{"source": k[0], "cot": k[1], "buyer_family": k[2], "buyer_scale": k[3],
            "seller_family": k[4], "seller_scale": k[5], "n": len(groups[k]),
            "metrics": _summaries(groups[k], PAPER_METRICS + ("buyer_surplus_share",))}
           for k in keys]
    by_source: dict[tuple, int] = {}
    for r in out:
        by_source[(r["source"], r["cot"])] = by_source.get((r["source"], r["cot"]), 0) + 1
    return [r for r in out if by_source[(r["source"], r["cot"])] >= 2]
