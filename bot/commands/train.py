"""`haggle train`: role-specialised models, from dialogue data to verified GGUF files.

    haggle train data   --role seller --split validation     # chat examples + report
    haggle train fit    --role seller --max-steps 300        # LoRA on the base (resumable)
    haggle train merge  --role seller                        # adapter folded into the base
    haggle train export --role seller                        # F16 GGUF + quantized GGUFs
    haggle train verify --role seller                        # top-1 agreement, per file
    haggle train all    --role seller --split validation --max-steps 300 --threads 1

The narrator (the words of hybrid agents, docs/narration.md) trains a LoRA adapter that ships
as one small GGUF file, applied by llama.cpp on the embedded base ([models.NAME] lora):

    haggle train data    --role narrator --split validation  # people's words for given moves
    haggle train fit     --role narrator --max-steps 40 --batch-size 4 --max-seq-len 640 \
                         --set lora_r=16 --set lora_alpha=32 --set learning_rate=5e-4 --threads 1
    haggle train adapter --role narrator                     # narrator.lora.gguf + manifest

Everything lands in one folder per model, ``--out DIR`` (default adapters/<role>/), recorded in
its manifest.json (the stages are training/pipeline.py's); ``data`` alone writes ``--out FILE`` (default
DIR/data/<role>.jsonl) and its .eval.jsonl and .report.json siblings. Hyperparameters come
from the [training] table of the config file (training/config.py), then from the flags.
Torch, transformers and peft are imported only when a stage needs them (training/).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Config
    from training.config import TrainingConfig
    from training.fit import FitResult
    from training.verify import Verdict

log = logging.getLogger(__name__)

STAGES = ("data", "fit", "merge", "export", "verify", "adapter", "all")
ROLES = ("buyer", "seller", "generalist")  # = training.data.ROLES (not imported: keeps --help light)
NARRATOR = "narrator"  # training/narrator.py: a LoRA adapter, exported by the adapter stage
SPLITS = ("train", "validation", "test")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a buyer/seller/generalist model: data, fit, merge, export, verify",
        description="Role-specialised LoRA fine-tuning, from CraigslistBargains (and Deal or No "
                    "Deal for the generalist) to merged, quantized, verified GGUF files the bot "
                    "runs by naming the folder as a model path. See docs/training.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="stages: data (chat examples), fit (LoRA), merge, export (GGUF + quantize), "
               "verify (top-1 agreement), all (the whole chain, writes DIR/manifest.json). "
               "Several GPUs: accelerate launch --multi_gpu --num_processes N -m bot.cli train "
               "fit|all ... (data-parallel; see docs/training.md)")
    p.add_argument("stage", choices=STAGES, help="which stage to run")
    p.add_argument("--role", choices=(*ROLES, NARRATOR), required=True,
                   help="buyer: buyer turns; seller: seller turns; generalist: both + Deal or No "
                        "Deal; narrator: both sides' words for the move they played (hybrid agents)")
    p.add_argument("--out", metavar="PATH",
                   help="the model folder (default adapters/ROLE); for `data`, the examples file "
                        "(default DIR/data/ROLE.jsonl)")
    data = p.add_argument_group("data (stages data and all)")
    data.add_argument("--split", choices=SPLITS, default="train",
                      help="CraigslistBargains / Deal or No Deal split (default train; get it "
                           "once with `haggle data fetch craigslist`, see docs/data.md)")
    data.add_argument("--data", metavar="REF",
                      help="CraigslistBargains file: a path or hf://datasets/OWNER/REPO/FILE "
                           "(default: [data] craigslist_<split>, else the data cache)")
    data.add_argument("--deal", metavar="PATH",
                      help="Deal or No Deal folder or file, for the generalist "
                           "(default: [data] deal_or_no_deal, else the data cache)")
    data.add_argument("--max-turns", type=int, metavar="N",
                      help="cut dialogues at the serving turn cap (default [negotiation] max_turns)")
    fit = p.add_argument_group("fit (hyperparameters: [training], then these flags)")
    fit.add_argument("--examples", metavar="FILE",
                     help="chat examples to fit on (default DIR/data/ROLE.jsonl; held-out "
                          "examples from its .eval.jsonl sibling when present)")
    fit.add_argument("--base", metavar="REF",
                     help="base model: a llama-family GGUF, HF checkpoint dir, hf://... or "
                          "'embedded' (default [training] base, else the embedded SmolLM2-135M)")
    fit.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps")
    fit.add_argument("--batch-size", type=int, metavar="N", help="examples per micro-batch")
    fit.add_argument("--max-seq-len", type=int, metavar="N", help="tokens per example (truncated)")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any other [training] key, e.g. --set learning_rate=1e-4 (repeatable)")
    fit.add_argument("--threads", type=int, metavar="N",
                     help="torch CPU threads (on a busy machine 1 can beat 2; see bench/train_speed.py)")
    fit.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    fit.add_argument("--fresh", action="store_true",
                     help="start the fit over instead of resuming from DIR/checkpoints")
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--template-gguf", metavar="PATH",
                   help="export: a GGUF of the base to copy tokenizer metadata from (needed when "
                        "the base is an HF checkpoint directory, not a GGUF)")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- configuration


def _toml_value(text: str) -> Any:
    """A --set value as TOML (numbers, booleans, lists, quoted strings), else the bare text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_settings(args: argparse.Namespace) -> tuple[Config, TrainingConfig]:
    """(bot Config, TrainingConfig): the config file's sections, [training] with the flags on top.

    [training] is read here from the TOML file and the rest validated by bot.config without it,
    so this works whether or not bot/config.py lists [training] among its sections.
    """
    from bot.config import find_config, parse_config
    from bot.errors import ConfigError
    from training.config import training_section

    path = find_config(getattr(args, "config", None))
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = dict(raw.pop("training", {}) or {})
    cfg = parse_config(raw, path)
    train_cfg = training_section(table, "training", cfg.base_dir)  # relative base: config's folder
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set learning_rate=1e-4")
        overrides[key.strip()] = _toml_value(value.strip())
    for flag, key in (("base", "base"), ("max_steps", "max_steps"), ("batch_size", "batch_size"),
                      ("max_seq_len", "max_seq_len")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if overrides:
        merged = {**train_cfg.to_dict(), **overrides}
        train_cfg = training_section(merged, "training", None)  # flags: relative to the cwd
    return cfg, train_cfg


def model_dir(args: argparse.Namespace) -> Path:
    if args.stage != "data" and args.out:
        return Path(args.out)
    return Path("adapters") / args.role


def examples_path(args: argparse.Namespace) -> Path:
    if args.examples:
        return Path(args.examples)
    if args.stage == "data" and args.out:
        return Path(args.out)
    return model_dir(args) / "data" / f"{args.role}.jsonl"


# --------------------------------------------------------------------------- data


def stage_data(cfg: Config, train_cfg: TrainingConfig,
               args: argparse.Namespace) -> dict[str, Any]:
    """The data stage (training.pipeline.stage_data) with the flags' files; prints the report."""
    from training import pipeline

    if args.role == NARRATOR:
        from training.narrator import stage_narrator_data

        report = stage_narrator_data(cfg, args.split, examples_path(args), data=args.data,
                                     max_turns=args.max_turns, eval_fraction=train_cfg.eval_fraction,
                                     seed=train_cfg.seed)
        print(f"narrator examples from the {report['split']} split: {report['examples']['train']} "
              f"train, {report['examples']['eval']} eval; {report['trained_turns']} narrations "
              f"trained, by act: {report['targets']}; not targets: {report['not_targets']}")
        return report
    result = pipeline.stage_data(cfg, train_cfg, args.role, args.split, examples_path(args),
                                 data=args.data, deal=args.deal, max_turns=args.max_turns)
    _print_data(result)
    return result


def _print_data(r: dict[str, Any]) -> None:
    ex = r["examples"]
    print(f"{r['role']} examples from the {r['split']} split: {ex['train']} train "
          f"({ex['train_dialogues']} dialogues), {ex['eval']} eval ({ex['eval_dialogues']} dialogues)")
    for src in r["sources"]:
        count = src.get("dialogues", src.get("dialogue_lines"))
        skipped = src.get("skipped_records", src.get("skipped_lines"))
        print(f"  source {src['dataset']}: {src['path']} ({count} read, {skipped} unreadable)")
    turns = r["turns"]
    print(f"  {r['role']} turns trained: {turns.get('trained', 0)}; left as context or cut:")
    for reason, n in sorted(turns.items(), key=lambda kv: -kv[1]):
        if reason != "trained":
            print(f"    {n:6d}  {reason}")
    print("  formal action turns (no words):")
    for reason, n in sorted(r["formal_turns"].items(), key=lambda kv: -kv[1]):
        print(f"    {n:6d}  {reason}")
    print("  dialogues: " + ", ".join(f"{n} {k}" for k, n in r["dialogues"].items()))
    print("  acts from: " + ", ".join(f"{k} {n}" for k, n in r["act_source"].items()))
    t = r.get("tokens")
    if t:
        print(f"  tokens per example ({t['tokenizer']}): min {t['min']}, median {t['median']:.0f}, "
              f"p95 {t['p95']}, max {t['max']}, total {t['total']}; {t['over_max_seq_len']} over "
              f"max_seq_len {t['max_seq_len']} (truncated in fit)")
    print(f"  wrote {r['files']['train']}" + (f" and {r['files']['eval']}" if r['files']['eval'] else ""))


# --------------------------------------------------------------------------- model stages


def stage_fit(train_cfg: TrainingConfig, args: argparse.Namespace) -> FitResult:
    from training import pipeline
    from training.data import eval_path_for, report_path_for
    from training.manifest import update_manifest

    root = model_dir(args)
    train_path = examples_path(args)
    eval_path = eval_path_for(train_path)
    result = pipeline.stage_fit(train_cfg, root, train_path,
                                eval_path=eval_path if eval_path.is_file() else None,
                                resume=not args.fresh, progress=not args.no_progress,
                                device=args.device, threads=args.threads)
    if not result.main_process:
        return result
    report = report_path_for(train_path)
    if report.is_file():  # where the examples came from, and what was left out
        update_manifest(root, dataset=json.loads(report.read_text(encoding="utf-8")))
    before, after = result.eval_loss_before, result.eval_loss_after
    print(f"fit: {result.steps} steps on {result.train_examples} examples "
          f"({result.dropped_examples} dropped by max_seq_len); eval loss on "
          f"{result.eval_examples} held-out examples: {_num(before)} -> {_num(after)}; "
          f"{result.tokens_per_second:.0f} tokens/s over {result.train_seconds:.0f} s")
    return result


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def print_verdicts(verdicts: Sequence[Verdict]) -> None:
    print(f"{'file':<32}{'type':>8}{'agreement':>11}{'positions':>11}{'needed':>8}  verdict")
    for v in verdicts:
        name = Path(v.file).name
        verdict = "pass" if v.passed else ("FAIL" + (f" ({v.error})" if v.error else ""))
        print(f"{name:<32}{v.file_type:>8}{v.agreement:>11.4f}{v.positions:>11}"
              f"{v.min_agreement:>8.2f}  {verdict}")


def run(args: argparse.Namespace) -> int:
    from bot.errors import ConfigError
    from training.launch import launched_processes

    cfg, train_cfg = load_settings(args)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads {args.threads}: expected 1 or more")
    processes = launched_processes()
    if processes > 1 and args.stage not in ("fit", "all"):
        raise ConfigError(f"`haggle train {args.stage}` runs in one process; of the stages only "
                          f"fit and all train across the {processes} processes that accelerate "
                          f"launch started: run `haggle train {args.stage} ...` without it")
    if args.stage == "data":
        stage_data(cfg, train_cfg, args)
        return 0

    from training import pipeline

    root = model_dir(args)
    if args.role == NARRATOR and args.stage in ("merge", "export", "verify"):
        raise ConfigError(f"the narrator ships as a LoRA adapter file: run `haggle train adapter "
                          f"--role narrator`, not {args.stage}")
    if args.stage in ("fit", "all"):
        if args.stage == "all" and not args.examples:
            if processes > 1:  # rank 0 writes the examples, the others wait and read them
                from training.fit import process_state
                state = process_state(args.device)
                if state.is_main_process:
                    stage_data(cfg, train_cfg, args)
                state.wait_for_everyone()
            else:
                stage_data(cfg, train_cfg, args)
        result = stage_fit(train_cfg, args)
        if processes > 1:
            from training.fit import end_process_group
            end_process_group()
        if args.stage == "fit" or not result.main_process:
            return 0  # merge, export and verify run once, in rank 0
    if args.stage == "adapter" or (args.stage == "all" and args.role == NARRATOR):
        from training.adapter import adapter_stage

        manifest = adapter_stage(root, name=args.role if args.role == NARRATOR else None,
                                 threads=args.threads or 1)
        a, v, f = manifest["adapter"], manifest.get("verify") or {}, manifest["fit"]
        print(f"adapter: {root / a['file']} ({a['bytes'] / 2**20:.1f} MiB); eval loss "
              f"{_num(f.get('eval_loss_before'))} -> {_num(f.get('eval_loss_after'))} after "
              f"{f.get('steps')} steps; llama.cpp top-1 agreement with peft "
              f"{v.get('agreement', 'n/a')} over {v.get('positions', 0)} positions")
        print(f"manifest: {root / 'manifest.json'}")
        return 0
    if args.stage in ("merge", "all"):
        print(f"merge: {pipeline.stage_merge(train_cfg, root)}")
        if args.stage == "merge":
            return 0
    if args.stage in ("export", "all"):
        for f in pipeline.stage_export(train_cfg, root, template_gguf=args.template_gguf):
            print(f"export: {f.path} ({f.file_type}, {f.path.stat().st_size / 2**20:.1f} MiB)")
        if args.stage == "export":
            return 0
    verdicts = pipeline.stage_verify(train_cfg, root)
    print_verdicts(verdicts)
    print(f"manifest: {root / 'manifest.json'}")
    bad = pipeline.failed(verdicts)
    if bad:
        print(f"haggle: {len(bad)} file(s) failed verification; they stay on disk marked failed "
              "in the manifest and are refused as models unless force_unverified = true",
              file=sys.stderr)
        return 1
    return 0
