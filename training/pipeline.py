"""The training stages over one role-model folder, each recording itself in manifest.json.

This is what `haggle train fit|merge|export|verify|all` calls. A role-model folder
(adapters/<name>/) holds:

    manifest.json             committed: base, data, hyperparameters, losses, files, verdicts
    checkpoints/ adapter/     LoRA fit state and the final adapter (git-ignored)
    fit.json                  the fit's full loss history
    merged/                   the merged HF checkpoint
    <name>.F16.gguf           the export, and <name>.<TYPE>.gguf for each quant type

Stages can run one by one (each reads what the previous one left) or all at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ModelError
from training.config import TrainingConfig
from training.manifest import file_entry, read_manifest, sha256_file, update_manifest, versions

log = logging.getLogger(__name__)


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
              device: str | None = None, threads: int | None = None):
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
    data = {"train": {"path": str(train_path), "sha256": sha256_file(train_path),
                      "examples": len(read_chat_jsonl(train_path)),
                      "trained_on": result.train_examples}}
    if eval_path is not None:
        data["eval"] = {"path": str(eval_path), "sha256": sha256_file(eval_path),
                        "examples": result.eval_examples}
    else:
        data["eval"] = {"held_out_of_train": result.eval_examples,
                        "fraction": cfg.eval_fraction}
    update_manifest(
        layout.root, name=layout.name,
        base={"ref": cfg.base, "file": base_path.name,
              "sha256": sha256_file(base_path) if base_path.is_file() else None},
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
                 template_gguf: str | Path | None = None) -> list:
    """Write the F16 GGUF and each ``cfg.quant_types`` file; records names, sizes, sha256."""
    from training.export import export

    layout = Layout(Path(root))
    files = export(layout.merged_dir, layout.root, stem=layout.name,
                   quant_types=cfg.quant_types, template_gguf=template_gguf, name=layout.name)
    update_manifest(layout.root, files=[file_entry(f.path, type=f.file_type, verified=None)
                                        for f in files], verify=None)
    return files


def stage_verify(cfg: TrainingConfig, root: str | Path, *,
                 eval_path: str | Path | None = None) -> list:
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
    update_manifest(layout.root, files=entries, verify={
        "prompts": len(prompts) if prompts else "built-in",
        "results": [{**v.to_dict(), "file": Path(v.file).name} for v in verdicts]})
    return verdicts


def run_all(cfg: TrainingConfig, root: str | Path, train_path: str | Path, *,
            eval_path: str | Path | None = None, progress: bool = True,
            device: str | None = None, threads: int | None = None) -> list:
    """fit -> merge -> export -> verify; returns the verdicts (manifest.json has everything)."""
    stage_fit(cfg, root, train_path, eval_path=eval_path, progress=progress, device=device,
              threads=threads)
    stage_merge(cfg, root)
    stage_export(cfg, root)
    return stage_verify(cfg, root, eval_path=eval_path)


def failed(verdicts: Sequence) -> list:
    """The verdicts that did not pass (the CLI exits non-zero when there are any)."""
    return [v for v in verdicts if not v.passed]
