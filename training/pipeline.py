"""The training stages, data -> fit -> merge -> export -> verify, as `haggle train` runs them.

``stage_data`` writes a role's chat examples (and their .eval.jsonl and .report.json siblings)
from CraigslistBargains (and Deal or No Deal for the generalist). The model stages work over
one role-model folder, each recording itself in its manifest.json. A role-model folder
(adapters/<name>/) holds:

    manifest.json             committed: base, data, hyperparameters, losses, files, verdicts
    checkpoints/ adapter/     LoRA fit state and the final adapter (git-ignored)
    fit.json                  the fit's full loss history
    merged/                   the merged HF checkpoint
    <name>.F16.gguf           the export, and <name>.<TYPE>.gguf for each quant type

Stages run one by one (each reads what the previous one left); `haggle train all` runs them in
order (bot/commands/train.py, which also spreads the fit over the processes accelerate starts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import DataError, ModelError
from bot.files import file_sha256
from training.config import TrainingConfig
from training.manifest import file_entry, read_manifest, update_manifest, versions

if TYPE_CHECKING:
    from bot.config import Config
    from training.export import ExportedFile
    from training.fit import FitResult
    from training.verify import Verdict

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- data


def craigslist_ref(cfg: Config, split: str, data: str | None = None) -> str:
    """The CraigslistBargains file of ``split``: ``data`` (a path or hf:// reference) when
    given, else [data] craigslist_<split> (relative to the config file), else the copy
    ``haggle data fetch craigslist`` keeps in the data cache (else a one-line error saying how
    to get it)."""
    from bot import data_sources

    if data:
        return data
    return data_sources.locate(cfg, "craigslist", split)


def deal_file(cfg: Config, split: str, deal: str | None = None) -> Path:
    """The Deal or No Deal file of ``split``: ``deal`` (a folder or file) when given, else
    [data] deal_or_no_deal, else the data cache (``haggle data fetch deal-or-no-deal``)."""
    from bot import data_sources, hub
    from training.data import DEAL_FILES

    if not deal:
        return hub.resolve(data_sources.locate(cfg, "deal-or-no-deal", split))
    if hub.is_hub_ref(deal):
        return hub.resolve(deal)
    path = Path(deal)
    return path / DEAL_FILES[split] if path.is_dir() else path


def _token_lengths(examples: list[dict], base: str) -> list[int] | None:
    """Token counts of the rendered examples with the base model's tokenizer (None without
    transformers: the examples do not depend on it)."""
    try:
        from training.examples import render
        from training.modeling import load_tokenizer, resolve_base
    except ImportError as exc:
        log.warning("token lengths not measured (%s); install the [train] extra", exc)
        return None
    tokenizer = load_tokenizer(resolve_base(base))
    return [len(tokenizer(render(tokenizer, e["messages"]), add_special_tokens=False)["input_ids"])
            for e in examples]


def _display(path: Path) -> str:
    """A path relative to the working directory when inside it (reports stay portable)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def stage_data(cfg: Config, train_cfg: TrainingConfig, role: str, split: str,
               out: str | Path, *, data: str | None = None, deal: str | None = None,
               max_turns: int | None = None) -> dict[str, Any]:
    """Build, split and write ``role``'s examples to ``out`` (held-out ones to its .eval.jsonl
    sibling); returns the report, also written as its .report.json sibling."""
    from bot.datasets import read_craigslist
    from training.data import (
        Report,
        build_examples,
        eval_path_for,
        read_deal_file,
        report_path_for,
        split_examples,
        token_stats,
        write_jsonl,
    )

    max_turns = max_turns or cfg.negotiation.max_turns
    ref = craigslist_ref(cfg, split, data)
    fractions = {"seller_bottom_fraction": cfg.negotiation.seller_bottom_fraction,
                 "buyer_ceiling_fraction": cfg.negotiation.buyer_ceiling_fraction}
    cb = read_craigslist(ref, **fractions)
    report = Report(role=role, split=split)
    configured = (data or getattr(cfg.data, f"craigslist_{split}")
                  or f"data cache: craigslist:{split}")
    report.sources.append({"dataset": "CraigslistBargains", "split": split, "ref": configured,
                           "path": str(cb.path.resolve()), "sha256": file_sha256(cb.path),
                           "dialogues": len(cb.dialogues),
                           "skipped_records": len(cb.skipped)})
    deals = []
    if role == "generalist":
        deal_path = deal_file(cfg, split, deal)
        deals, bad = read_deal_file(deal_path)
        report.sources.append({"dataset": "Deal or No Deal", "split": split,
                               "ref": (deal or cfg.data.deal_or_no_deal
                                       or f"data cache: deal-or-no-deal:{split}"),
                               "path": str(deal_path.resolve()), "sha256": file_sha256(deal_path),
                               "dialogue_lines": len(deals), "skipped_lines": len(bad)})
    examples, report = build_examples(role, split, craigslist=cb.dialogues,
                                      craigslist_source=f"craigslist:{split}", deal=deals,
                                      deal_source=f"deal_or_no_deal:{split}",
                                      max_turns=max_turns, report=report)
    train, held = split_examples(examples, train_cfg.eval_fraction, train_cfg.seed)
    if not train:
        raise DataError(f"all {len(examples)} {role} examples fell in the eval split; "
                        "lower training.eval_fraction or use more data")
    out = Path(out)
    eval_out = eval_path_for(out)
    write_jsonl(out, train)
    if held:
        write_jsonl(eval_out, held)
    else:  # too few dialogues to hold any out: the fit holds out examples itself
        eval_out.unlink(missing_ok=True)
    report.examples = {"train": len(train), "eval": len(held),
                       "train_dialogues": len({e["id"] for e in train}),
                       "eval_dialogues": len({e["id"] for e in held})}
    lengths = _token_lengths(examples, train_cfg.base)
    if lengths:
        report.tokens = {"tokenizer": train_cfg.base, **token_stats(lengths, train_cfg.max_seq_len)}
    result = {**report.to_dict(), "max_turns": max_turns, "files": {
        "train": _display(out), "eval": _display(eval_out) if held else None}}
    report_path_for(out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


# --------------------------------------------------------------------------- the model stages


@dataclass(frozen=True)
class Layout:
    """Where each artefact of the role model in ``root`` lives."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def adapter_dir(self) -> Path:
        return self.root / "adapter"

    @property
    def merged_dir(self) -> Path:
        return self.root / "merged"

    def gguf(self, file_type: str) -> Path:
        return self.root / f"{self.name}.{file_type}.gguf"


def stage_fit(cfg: TrainingConfig, root: str | Path, train_path: str | Path, *,
              eval_path: str | Path | None = None, resume: bool = True, progress: bool = True,
              device: str | None = None, threads: int | None = None) -> FitResult:
    """LoRA-fit the base on ``train_path``; records base, data, hyperparameters and losses."""
    from training.examples import read_chat_jsonl
    from training.fit import fit
    from training.modeling import resolve_base

    layout = Layout(Path(root))
    result = fit(cfg, train_path, layout.root, eval_path=eval_path, device=device, resume=resume,
                 progress=progress, threads=threads)
    if not result.main_process:  # one process of several: rank 0 records the run
        return result
    base_path = resolve_base(cfg.base)
    data = {"train": {"path": str(train_path), "sha256": file_sha256(train_path),
                      "examples": len(read_chat_jsonl(train_path)),
                      "trained_on": result.train_examples}}
    if eval_path is not None:
        data["eval"] = {"path": str(eval_path), "sha256": file_sha256(eval_path),
                        "examples": result.eval_examples}
    else:
        data["eval"] = {"held_out_of_train": result.eval_examples,
                        "fraction": cfg.eval_fraction}
    update_manifest(
        layout.root, name=layout.name,
        base={"ref": cfg.base, "file": base_path.name,
              "sha256": file_sha256(base_path) if base_path.is_file() else None},
        data=data, hyperparameters=cfg.to_dict(),
        fit={k: v for k, v in result.to_dict().items() if k not in ("history", "adapter_dir")},
        versions=versions())
    return result


def stage_merge(cfg: TrainingConfig, root: str | Path, *, with_adapter: bool = True) -> Path:
    """Merge the fitted adapter into the base (``with_adapter=False``: the base alone)."""
    from training.merge import merge

    layout = Layout(Path(root))
    adapter = layout.adapter_dir if with_adapter else None
    merged = merge(cfg.base, adapter, layout.merged_dir)
    update_manifest(layout.root, merge={"adapter": adapter is not None})
    return merged


def stage_export(cfg: TrainingConfig, root: str | Path, *,
                 template_gguf: str | Path | None = None) -> list[ExportedFile]:
    """Write the F16 GGUF and each ``cfg.quant_types`` file; records names, sizes, sha256."""
    from training.export import export

    layout = Layout(Path(root))
    files = export(layout.merged_dir, layout.root, stem=layout.name,
                   quant_types=cfg.quant_types, template_gguf=template_gguf, name=layout.name)
    update_manifest(layout.root, files=[file_entry(f.path, type=f.file_type, verified=None)
                                        for f in files], verify=None)
    return files


def stage_verify(cfg: TrainingConfig, root: str | Path, *,
                 eval_path: str | Path | None = None) -> list[Verdict]:
    """Verify every file the manifest lists; a failing file stays on disk, marked failed.

    Prompts: the first ``cfg.verify_prompts`` examples of ``eval_path`` (default: the eval file
    the fit used, if any), else the built-in prompts of training.verify.
    """
    from training.verify import prompts_from_jsonl, verify_files

    layout = Layout(Path(root))
    manifest = read_manifest(layout.root)
    entries = manifest.get("files") or []
    if not entries:
        raise ModelError(f"{layout.root}/manifest.json lists no exported files; run "
                         "`haggle train export` first")
    data = manifest.get("data") or {}
    eval_path = eval_path or (data.get("eval") or {}).get("path")
    prompts = None
    if eval_path:
        prompts = prompts_from_jsonl(eval_path, cfg.verify_prompts)
    elif (data.get("train") or {}).get("path") and Path(data["train"]["path"]).is_file():
        # The same examples the fit held out for eval loss (same split, same seed).
        from training.examples import read_chat_jsonl
        from training.fit import split_eval

        held_out = split_eval(read_chat_jsonl(data["train"]["path"]), cfg.eval_fraction,
                              cfg.seed)[1]
        prompts = held_out[: cfg.verify_prompts] or None
    verdicts = verify_files(layout.merged_dir,
                            [(layout.root / e["name"], e["type"]) for e in entries],
                            min_agreement=cfg.min_agreement, prompts=prompts)
    by_name = {Path(v.file).name: v for v in verdicts}
    for entry in entries:
        entry["verified"] = by_name[entry["name"]].passed
        # record the file as verified now: the model loader refuses a file that differs from
        # this (an export that overwrote it since), and re-verifying is how it is accepted
        path = layout.root / entry["name"]
        entry["bytes"], entry["sha256"] = path.stat().st_size, file_sha256(path)
    update_manifest(layout.root, files=entries, verify={
        "prompts": len(prompts) if prompts else "built-in",
        "results": [{**v.to_dict(), "file": Path(v.file).name} for v in verdicts]})
    return verdicts


def failed(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts that did not pass (the CLI exits non-zero when there are any)."""
    return [v for v in verdicts if not v.passed]
