"""PNG charts of a report (`haggle report --plots DIR`), the paper's comparisons among them."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.report.data import ReportData
from bot.report.paper import AGREEMATE_SOURCE, PAPER_LABELS, PAPER_METRICS
from bot.report.stats import SEATS, pairing_groups
from bot.report.tables import fmt_pct

SOURCE_COLOURS = {"tournament": "#4c72b0", "reference": "#a0a0a0"}
BUYER_COLOUR, SELLER_COLOUR = "#1f77b4", "#d95f02"
# Acts stacked in the order a negotiation tells its story: talk, prices, closing, noise.
ACT_COLOURS = {
    "intro": "#c6dbef", "inquire": "#6baed6", "inform": "#2171b5",
    "init-price": "#fdd0a2", "offer": "#fdae6b", "counter-price": "#fd8d3c",
    "vague-price": "#e6550d", "insist": "#a63603",
    "agree": "#a1d99b", "accept": "#31a354",
    "disagree": "#fcbba1", "reject": "#ef3b2c", "quit": "#99000d",
    "unknown": "#bdbdbd",
}
PANELS_PER_PAGE = 12


def write_plots(data: ReportData, report: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """PNG charts into ``out_dir``; returns the files written.

    agreement_by_pairing.png, fairness_bias.png, acts_by_agent.png, leaderboard.png and
    price_trajectories[_N].png (12 pairings a page). Charts that need turns are skipped when
    ``data`` was loaded without them.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"font.size": 9, "axes.titlesize": 11, "axes.titleweight": "bold",
                         "axes.spines.top": False, "axes.spines.right": False}):
        written = [_plot_agreement(plt, report, out / "agreement_by_pairing.png"),
                   _plot_fairness_bias(plt, data, report, out / "fairness_bias.png"),
                   _plot_acts(plt, data, out / "acts_by_agent.png"),
                   _plot_leaderboard(plt, report, out / "leaderboard.png")]
        written += _plot_trajectories(plt, data, report, out)
        written += write_paper_plots(plt, report.get("paper", {}), out)
    return [p for p in written if p is not None]


def _bar_height(n: int) -> float:
    return max(2.2, 1.0 + 0.27 * n)


def _rows_axis(ax: Any, labels: Sequence[str]) -> None:
    """Horizontal-bar rows: one tick per label, no empty margin above or below."""
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)


def _plot_agreement(plt: Any, report: Mapping[str, Any], path: Path) -> Path:
    # Highest agreement on top (barh draws bottom-up, hence the reversed sort).
    pairings = sorted(report["pairings"],
                      key=lambda p: (-(p["metrics"]["agreed"]["mean"] or 0.0), p["label"]))[::-1]
    fig, ax = plt.subplots(figsize=(9, _bar_height(len(pairings))))
    ys = range(len(pairings))
    rates = [p["metrics"]["agreed"]["mean"] or 0.0 for p in pairings]
    lows = [max(0.0, r if s["ci_low"] is None else s["ci_low"])
            for p, r in zip(pairings, rates, strict=False) for s in [p["metrics"]["agreed"]]]
    highs = [min(1.0, r if s["ci_high"] is None else s["ci_high"])
             for p, r in zip(pairings, rates, strict=False) for s in [p["metrics"]["agreed"]]]
    ax.barh(ys, rates, color=[SOURCE_COLOURS.get(p["kind"], "#4c72b0") for p in pairings],
            height=0.7)
    ax.errorbar(rates, ys, xerr=[[r - lo for r, lo in zip(rates, lows, strict=False)],
                                 [hi - r for r, hi in zip(rates, highs, strict=False)]],
                fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    for y, p, r in zip(ys, pairings, rates, strict=False):
        ax.text(1.02, y, f"{100 * r:.0f}%  n={p['n']}", va="center", fontsize=8,
                transform=ax.get_yaxis_transform())
    _rows_axis(ax, [p["label"] for p in pairings])
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlabel("negotiations that ended in a deal (whiskers: 95% interval)")
    ax.set_title("Agreement rate by pairing (buyer vs seller)", loc="left")
    kinds = {p["kind"] for p in pairings}
    if len(kinds) > 1:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=SOURCE_COLOURS["tournament"], label="our tournaments"),
                           Patch(color=SOURCE_COLOURS["reference"],
                                 label="AgreeMate published runs")],
                  loc="upper center", ncol=2, fontsize=8, frameon=False,
                  bbox_to_anchor=(0.5, -0.6 / _bar_height(len(pairings)) - 0.02))
    return _save(plt, fig, path)


# x ranges of the distribution panels: the formulas allow any value for deals far outside the
# targets, and one such deal would squash every box; values beyond are drawn on the edge.
_FAIRNESS_RANGE, _BIAS_RANGE = (-1.5, 1.05), (-1.6, 1.6)


def _plot_fairness_bias(plt: Any, data: ReportData, report: Mapping[str, Any], path: Path) -> Path:
    import matplotlib
    import numpy as np

    groups = pairing_groups(data.negotiations)

    def median_bias(p: Mapping[str, Any]) -> float:
        value = p["metrics"]["bias"]["median"]
        return -math.inf if value is None else value

    # Most buyer-favourable (bias near +1) on top.
    pairings = sorted(report["pairings"], key=lambda p: (median_bias(p), p["label"]))
    fig, axes = plt.subplots(1, 2, figsize=(12.5, _bar_height(len(pairings)) + 0.3), sharey=True)
    ys = list(range(len(pairings)))
    panels = (("fairness", "Fairness of deals", 1.0, _FAIRNESS_RANGE,
               "fairness: 1 = deal halfway between\nthe two targets; lower = lopsided"),
              ("bias", "Who the deal favours (signed bias)", 0.0, _BIAS_RANGE,
               "bias: +1 = buyer got its target,\n-1 = seller got its target"))
    for ax, (key, title, ref, (lo, hi), xlabel) in zip(axes, panels, strict=False):
        values = [[n.metrics[key] for n in groups[(p["tournament"], p["buyer"], p["seller"])]
                   if n.metrics.get(key) is not None] for p in pairings]
        filled = [(y, vs, p) for y, vs, p in zip(ys, values, pairings, strict=False) if vs]
        if filled:
            box = ax.boxplot([vs for _, vs, _ in filled], positions=[y for y, _, _ in filled],
                             widths=0.6, patch_artist=True, showfliers=False, whis=(5, 95),
                             medianprops={"color": "black"}, **_horizontal(matplotlib))
            for patch, (_, _, p) in zip(box["boxes"], filled, strict=False):
                patch.set_facecolor(SOURCE_COLOURS.get(p["kind"], "#4c72b0"))
                patch.set_alpha(0.55)
            xs = np.array([v for _, vs, _ in filled for v in vs])
            yv = np.array([y for y, vs, _ in filled for _ in vs], dtype=float)
            inside = (xs >= lo) & (xs <= hi)
            ax.scatter(xs[inside], yv[inside], s=6, color="black", alpha=0.35, zorder=3)
            for edge, mask, marker in ((lo, xs < lo, "<"), (hi, xs > hi, ">")):
                if mask.any():
                    ax.scatter(np.full(mask.sum(), edge), yv[mask], s=14, marker=marker,
                               color="#b2182b", alpha=0.7, zorder=3, clip_on=False)
        for y, vs in zip(ys, values, strict=False):
            if not vs:
                ax.text(0.5, y, "no deals", va="center", ha="center", fontsize=7, color="grey",
                        transform=ax.get_yaxis_transform())
        ax.axvline(ref, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlim(lo, hi)
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
    _rows_axis(axes[0], [p["label"] for p in pairings])
    fig.suptitle("Each pairing's deals: box = middle half, whiskers = 5-95%, dots = deals, "
                 "red arrows = beyond the axis", x=0.01, ha="left", fontsize=9)
    return _save(plt, fig, path, reserve_top=0.3 / fig.get_figheight())


def _horizontal(matplotlib: Any) -> dict[str, Any]:
    """boxplot's keyword for horizontal boxes: ``orientation`` since 3.10, ``vert`` before."""
    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _plot_acts(plt: Any, data: ReportData, path: Path) -> Path | None:
    if data.turns is None:
        return None
    by_id = {n.id: n for n in data.negotiations}
    counts: dict[str, Counter] = defaultdict(Counter)
    for nid, turns in data.turns.items():
        n = by_id.get(nid)
        if n is None:
            continue
        for t in turns:
            counts[f"{n.buyer if t.role == 'buyer' else n.seller} ({t.role})"][t.act] += 1
    if not counts:
        return None
    rows = sorted(counts)[::-1]
    acts = [a for a in ACT_COLOURS if any(c[a] for c in counts.values())]
    acts += sorted({a for c in counts.values() for a in c} - set(acts))
    fig, ax = plt.subplots(figsize=(11, _bar_height(len(rows))))
    left = [0.0] * len(rows)
    for act in acts:
        shares = [counts[r][act] / sum(counts[r].values()) for r in rows]
        colour = ACT_COLOURS.get(act, "#7f7f7f")
        ax.barh(range(len(rows)), shares, left=left, color=colour, label=act, height=0.75)
        dark = act in ("inform", "vague-price", "insist", "accept", "reject", "quit")
        for y, (x0, s) in enumerate(zip(left, shares, strict=False)):
            if s >= 0.08:
                ax.text(x0 + s / 2, y, f"{100 * s:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        left = [x + s for x, s in zip(left, shares, strict=False)]
    _rows_axis(ax, [f"{r}  n={sum(counts[r].values())}" for r in rows])
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    ax.set_xlabel("share of the agent's turns (numbers: % where >= 8%; n = turns)")
    ax.set_title("What each agent does: dialogue acts by agent and seat", loc="left")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(plt, fig, path)


def _plot_leaderboard(plt: Any, report: Mapping[str, Any], path: Path) -> Path | None:
    rows = [r for r in report["leaderboard"] if r["rating"] is not None][::-1]
    if not rows:
        return None
    groups = sorted({r["group"] for r in rows})
    cmap = plt.get_cmap("tab10")
    colour = {g: cmap(i % 10) for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(9, _bar_height(len(rows))))
    for y, r in enumerate(rows):
        ax.errorbar([r["rating"]], [y], xerr=[[r["rating"] - r["rating_low"]],
                                             [r["rating_high"] - r["rating"]]],
                    fmt="o", color=colour[r["group"]], ecolor="grey", capsize=2)
        ax.text(1.02, y, f"{r['rating']:.0f}   agreement {fmt_pct(r['agreement']).split(' ')[0]}",
                va="center", fontsize=8, transform=ax.get_yaxis_transform())
    _rows_axis(ax, [r["agent"] for r in rows])
    ax.axvline(1500, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("rating, Elo scale (whiskers: 95% interval); 1500 = average of its group")
    ax.set_title("Leaderboard: who takes the bigger share of the deals", loc="left")
    if len(groups) > 1:
        from matplotlib.lines import Line2D

        fig.legend([Line2D([], [], marker="o", linestyle="", color=colour[g]) for g in groups],
                   [f"group {g}" for g in groups], fontsize=8, frameon=False,
                   loc="lower center", ncol=min(len(groups), 6),
                   title="rated together (ratings compare only within a group)",
                   title_fontsize=8)
        return _save(plt, fig, path, reserve_bottom=0.55 / fig.get_figheight())
    return _save(plt, fig, path)


def _plot_trajectories(plt: Any, data: ReportData, report: Mapping[str, Any],
                       out: Path) -> list[Path]:
    if data.turns is None:
        return []
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    pairings = report["pairings"]  # tournament order: related pairings stay on one page
    groups = pairing_groups(data.negotiations)
    pages = [pairings[i:i + PANELS_PER_PAGE] for i in range(0, len(pairings), PANELS_PER_PAGE)]
    written = []
    for page_no, page in enumerate(pages, 1):
        cols = min(3, len(page))
        rows_n = math.ceil(len(page) / cols)
        height = 1.1 + 3.3 * rows_n
        fig, axes = plt.subplots(rows_n, cols, figsize=(4.8 * cols, height), squeeze=False,
                                 sharey=True)
        for ax in axes.flat[len(page):]:
            ax.set_visible(False)
        highs: list[float] = []
        for ax, p in zip(axes.flat, page, strict=False):
            negs = groups[(p["tournament"], p["buyer"], p["seller"])]
            series: dict[str, list[list[tuple[int, float]]]] = {"buyer": [], "seller": []}
            deals = []
            for n in negs:
                listing = n.scenario["listing_price"]
                for seat in SEATS:
                    pts = [(t.idx + 1, t.price / listing) for t in data.turns.get(n.id, [])
                           if t.role == seat and t.price is not None and t.act != "accept"]
                    if pts:
                        series[seat].append(pts)
                        highs += [y for _, y in pts]
                if n.deal_price is not None:
                    deals.append((n.metrics.get("dialogue_length") or 0, n.deal_price / listing))
            # One collection per seat: a separate line per negotiation takes long to draw.
            alpha = max(0.1, min(0.5, 4.0 / max(1, len(negs))))
            for seat, colour in (("buyer", BUYER_COLOUR), ("seller", SELLER_COLOUR)):
                ax.add_collection(LineCollection(series[seat], colors=colour, alpha=alpha,
                                                 linewidths=0.8))
                by_turn: dict[int, list[float]] = defaultdict(list)
                for pts in series[seat]:
                    for x, y in pts:
                        by_turn[x].append(y)
                xs = sorted(x for x, v in by_turn.items() if len(v) >= 3)
                if xs:
                    ax.plot(xs, [float(np.median(by_turn[x])) for x in xs], color=colour,
                            linewidth=2.2)
            if deals:
                ax.scatter(*zip(*deals, strict=False), s=9, color="black", alpha=0.5, zorder=3)
            ax.axhline(1.0, color="grey", linestyle=":", linewidth=0.8)
            ax.set_xlim(0.5, max(n.max_turns for n in negs) + 0.5)
            rate = p["metrics"]["agreed"]["mean"] or 0.0
            ax.set_title(f"{_wrap(p['label'], 48)}\n{p['n']} negotiations, "
                         f"{100 * rate:.0f}% deals", fontsize=8.5, loc="left")
            ax.set_xlabel("turn")
        for ax in axes[:, 0]:
            ax.set_ylabel("price / listing price")
        top = float(np.percentile(highs, 99)) if highs else 1.0
        axes.flat[0].set_ylim(0, min(2.0, max(1.1, top + 0.1)))
        handles = [Line2D([], [], color=BUYER_COLOUR, linewidth=2.2),
                   Line2D([], [], color=SELLER_COLOUR, linewidth=2.2),
                   Line2D([], [], marker="o", color="black", linestyle="", markersize=4, alpha=0.6)]
        fig.legend(handles, ["buyer's offers (thin: each negotiation; thick: median)",
                             "seller's offers", "deal price, at the turn it closed"],
                   loc="upper left", bbox_to_anchor=(0.01, 1 - 0.45 / height), ncol=3,
                   fontsize=8, frameon=False)
        suffix = f" (page {page_no} of {len(pages)})" if len(pages) > 1 else ""
        fig.suptitle(f"Price trajectories: offers turn by turn, as a fraction of the listing "
                     f"price{suffix}", x=0.01, y=1 - 0.12 / height, ha="left", fontsize=11,
                     fontweight="bold")
        # A fixed layout in inches: tight_layout on a dozen panels costs seconds.
        fig.subplots_adjust(left=0.75 / (4.8 * cols), right=0.98, bottom=0.5 / height,
                            top=1 - 1.25 / height, wspace=0.08, hspace=0.6)
        name = "price_trajectories.png" if len(pages) == 1 else f"price_trajectories_{page_no}.png"
        written.append(_save(plt, fig, out / name, layout=False))
    return written


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _save(plt: Any, fig: Any, path: Path, *, layout: bool = True, reserve_top: float = 0.0,
          reserve_bottom: float = 0.0) -> Path:
    if layout:
        fig.tight_layout(rect=(0, reserve_bottom, 1, 1 - reserve_top))
    fig.savefig(path, dpi=110, bbox_inches="tight" if layout else None)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- the paper's charts


def write_paper_plots(plt: Any, paper: Mapping[str, Any], out: Path) -> list[Path]:
    """paper_cot.png (each metric, with vs without CoT, per source) and
    paper_personality.png (buyer x seller personality heatmaps of agreement, fairness and bias,
    per source); only those the data allow, and only when an experiment (bot/experiment.py) is in
    the report (the published runs alone keep the report's usual charts)."""
    written: list[Path] = []
    if not any(source != AGREEMATE_SOURCE for source in paper.get("sources", [])):
        return written
    if paper.get("cot"):
        written.append(_plot_paper_cot(plt, paper, out / "paper_cot.png"))
    if paper.get("personality"):
        written.append(_plot_paper_personality(plt, paper, out / "paper_personality.png"))
    return written


def _plot_paper_cot(plt: Any, paper: Mapping[str, Any], path: Path) -> Path:
    cot = paper["cot"]
    sources = list(dict.fromkeys(c["source"] for c in cot))
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.2))
    width = 0.38
    colours = {True: "#d95f02", False: "#7570b3"}
    for ax, key in zip(axes.flat, PAPER_METRICS, strict=False):
        for offset, with_cot in ((-width / 2, True), (width / 2, False)):
            values = []
            for source in sources:
                c = next((c for c in cot if c["source"] == source and c["cot"] == with_cot), None)
                mean = None if c is None else c["metrics"][key]["mean"]
                values.append(float("nan") if mean is None else mean)
            xs = [i + offset for i in range(len(sources))]
            bars = ax.bar(xs, values, width, color=colours[with_cot],
                          label="with CoT" if with_cot else "without CoT")
            for bar, value in zip(bars, values, strict=False):
                if not math.isnan(value):
                    text = f"{100 * value:.0f}%" if key == "agreed" else f"{value:.3g}"
                    ax.annotate(text, (bar.get_x() + bar.get_width() / 2, value),
                                ha="center", va="bottom" if value >= 0 else "top", fontsize=7,
                                xytext=(0, 2 if value >= 0 else -2), textcoords="offset points")
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_xticks(range(len(sources)), sources, fontsize=8)
        ax.set_title(PAPER_LABELS[key], fontsize=10, loc="left")
        ax.margins(y=0.18)
        if key == "agreed":
            ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=9, frameon=False)
    pairings = ", ".join(f"{c['source']} {'with' if c['cot'] else 'without'}: {c['pairings']}"
                         for c in cot)
    fig.suptitle("With vs without chain of thought (scale x CoT pairings; means of the pairings' "
                 f"means)\npairings: {pairings}", x=0.01, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_paper_personality(plt: Any, paper: Mapping[str, Any], path: Path) -> Path:
    import numpy as np

    groups = paper["personality"]
    panels = (("agreed", "agreement rate", "Greens", (0.0, 1.0)),
              ("fairness", "fairness of deals (1 = midway)", "RdYlGn", (-1.0, 1.0)),
              ("bias", "bias of deals (+1 = buyer's target)", "RdBu", (-1.5, 1.5)))
    fig, axes = plt.subplots(len(groups), len(panels), squeeze=False,
                             figsize=(3.9 * len(panels), 3.4 * len(groups) + 0.4))
    for row, g in zip(axes, groups, strict=False):
        cells = {(c["buyer"], c["seller"]): c for c in g["cells"]}
        label = f"{g['source']} {g['scale'] or ''}{' CoT' if g['cot'] else ''}".strip()
        for ax, (key, title, cmap, (lo, hi)) in zip(row, panels, strict=False):
            grid = np.full((len(g["buyers"]), len(g["sellers"])), np.nan)
            for i, b in enumerate(g["buyers"]):
                for j, s in enumerate(g["sellers"]):
                    c = cells.get((b, s))
                    if c is not None and c["metrics"][key]["mean"] is not None:
                        grid[i, j] = c["metrics"][key]["mean"]
            colours = plt.get_cmap(cmap).with_extremes(bad="#e8e8e8")
            ax.imshow(np.ma.masked_invalid(grid), cmap=colours, vmin=lo, vmax=hi, aspect="auto")
            for i, b in enumerate(g["buyers"]):
                for j, s in enumerate(g["sellers"]):
                    c = cells.get((b, s))
                    if c is None:
                        continue
                    n = c["metrics"][key]["n"]
                    text = ("no deals" if n == 0 else
                            f"{100 * grid[i, j]:.0f}%" if key == "agreed" else f"{grid[i, j]:.2f}")
                    rgba = colours((grid[i, j] - lo) / (hi - lo)) if n else (1.0, 1.0, 1.0)
                    dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
                    ax.text(j, i, f"{text}\nn={n}", ha="center", va="center", fontsize=7.5,
                            color="white" if dark else "black")
            ax.set_xticks(range(len(g["sellers"])), g["sellers"], fontsize=8)
            ax.set_yticks(range(len(g["buyers"])), g["buyers"], fontsize=8)
            ax.set_xlabel("seller personality", fontsize=8)
            ax.set_ylabel("buyer personality", fontsize=8)
            ax.set_title(f"{label}\n{title}", fontsize=9, loc="left")
    fig.suptitle("Personality pairings (rows: buyer, columns: seller; n = negotiations for "
                 "agreement, deals otherwise)", x=0.01, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
