"""`haggle probe`: which attention heads look from prices to negotiation verbs (AgreeMate's probe).

    haggle match --scenario-set agreemate --json > match.json
    haggle probe --model embedded --transcript match.json --heatmap probe.png
    haggle probe --model buyer-3B.gguf --compare seller-3B.gguf --transcript t.txt --head 2.14

Needs the training extra (torch, transformers): the model loads with transformers, which
reads GGUF files directly. See training/probe.py for what is measured.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe", help="attention probing: heads that attend from prices to negotiation verbs",
        description="Run a model on a negotiation transcript with attention weights on and "
                    "measure, per layer and head, the attention mass from price tokens (numbers, "
                    "$ amounts) to verb tokens (sell, offer, pay, take, ...): the top heads, and a "
                    "heatmap of one head. --compare runs a second model on the same transcript.")
    p.add_argument("--model", required=True, metavar="REF",
                   help="a model: 'embedded', a .gguf path, hf://OWNER/REPO/FILE.gguf, a Hugging "
                        "Face checkpoint folder, or a [models.NAME] of config.toml")
    p.add_argument("--transcript", required=True, metavar="FILE",
                   help="a JSON record (haggle match/play --json) or a text file, one turn a line")
    p.add_argument("--verbs", metavar="V,V,...",
                   help="verbs to attend to, matched as words with -s/-ed/-ing forms (default: "
                        "sell,sold,buy,bought,offer,pay,paid,take,took,give,gave,accept,meet,do)")
    p.add_argument("--head", metavar="L.H",
                   help="the head of the heatmap, layer.head counting from 0 (default: the top "
                        "head of the first model)")
    p.add_argument("--heatmap", metavar="PNG", help="write the heatmap here")
    p.add_argument("--compare", metavar="REF2",
                   help="a second model run on the same transcript, printed beside the first")
    p.add_argument("--top", type=int, default=10, metavar="N", help="heads listed (default 10)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def _model_ref(cfg, ref: str) -> str:
    """A configured model name stands for its path; anything else is a reference."""
    spec = cfg.models.get(ref)
    return spec.path if spec is not None and spec.backend in ("llamacpp", "llamacpp-batched") else ref


def run(args: argparse.Namespace) -> int:
    from bot.commands._common import resolve_config
    from bot.errors import ConfigError

    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    try:
        from training import probe
    except ImportError as exc:
        raise ConfigError(f"haggle probe needs the training extra ({exc.name} is missing): "
                          "pip install torch==2.13.0 and then pip install -e '.[train]'") from None

    cfg = resolve_config(args)
    transcript = probe.read_transcript(args.transcript)
    verbs = probe.DEFAULT_VERBS
    if args.verbs is not None:
        verbs = tuple(v.strip() for v in args.verbs.split(",") if v.strip())
    wanted = probe.parse_head(args.head) if args.head else None
    keep = bool(args.heatmap)
    results = []
    for ref in [args.model] + ([args.compare] if args.compare else []):
        loaded = probe.load(_model_ref(cfg, ref), device=args.device)
        result = probe.probe(loaded, transcript, verbs, keep_attentions=keep)
        result.model = ref
        results.append(result)
        del loaded
    heads = []
    for r in results:
        head = wanted or results[0].top(1)[0][:2]
        probe.check_head(r, *head)
        heads.append(head)

    if args.json:
        print(json.dumps({"results": [r.to_dict(args.top) for r in results]}, indent=1))
    else:
        print(probe.format_report(results, args.top))
    if args.heatmap:
        path = probe.write_heatmap(results, heads, args.heatmap)
        print(f"wrote {path} (layer {heads[0][0]}, head {heads[0][1]})", file=sys.stderr)
    return 0
