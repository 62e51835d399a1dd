"""`haggle models`: the configured models, with what their GGUF files say about themselves.

For each ``[models.NAME]``: the reference, the local file, its size and sha256 prefix, and the
architecture, parameter count and quantization read from the GGUF header. hf:// files are only
looked up in the local Hugging Face cache (listing never downloads); a model whose file cannot
be had is listed with the reason, and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the configured models and their GGUF files",
                       description="List [models.NAME] entries: path, size, sha256 prefix, "
                                   "architecture, parameters and quantization from the GGUF.")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $HAGGLE_CONFIG, ./config.toml, the repo's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def describe_models(specs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One dict per ModelSpec; GGUF facts for llama.cpp models, ``error`` when unavailable."""
    from bot.errors import HaggleError
    from bot.llm.models import inspect_gguf, resolve_model

    rows: list[dict[str, Any]] = []
    for name, spec in specs.items():
        row: dict[str, Any] = {"name": name, "backend": spec.backend, "shared": spec.shared}
        if spec.backend == "openai":
            row.update(url=spec.url, model=spec.remote_model, schema_style=spec.schema_style)
            rows.append(row)
            continue
        row["reference"] = spec.path
        try:
            info = inspect_gguf(resolve_model(spec.path, download=False))
        except HaggleError as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        row.update(
            path=str(info.path),
            size_bytes=info.size_bytes,
            sha256=info.sha256,
            architecture=info.architecture,
            parameters=info.parameters,
            quantization=info.quantization,
            context_length=info.context_length,
            chat_template=info.has_chat_template,
            n_ctx=spec.n_ctx,
            n_gpu_layers=spec.n_gpu_layers,
        )
        rows.append(row)
    return rows


def human_count(n: int) -> str:
    """134515008 -> '134.5M' (parameters), 1_234_567_890 -> '1.23B'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g}{unit}" if value < 100 else f"{value:.1f}{unit}"
    return str(n)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - loop always returns


def format_models(rows: list[dict[str, Any]]) -> str:
    """A table: one line per model, errors and HTTP endpoints on their own terms."""
    header = ("NAME", "BACKEND", "ARCH", "PARAMS", "QUANT", "SIZE", "SHA256", "PATH")
    table = [header]
    for row in rows:
        if row["backend"] == "openai":
            table.append((row["name"], "openai", "-", "-", "-", "-", "-",
                          f"{row['url']} (model {row['model']}, {row['schema_style']})"))
        elif "error" in row:
            table.append((row["name"], row["backend"], "-", "-", "-", "-", "-",
                          f"{row['reference']}: {row['error']}"))
        else:
            table.append((row["name"], row["backend"], row["architecture"],
                          human_count(row["parameters"]), row["quantization"],
                          human_size(row["size_bytes"]), row["sha256"][:12], row["path"]))
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
        for r in table
    )


def run(args: argparse.Namespace) -> int:
    from bot.config import load_config

    cfg = load_config(args.config)
    rows = describe_models(cfg.models)
    print(json.dumps(rows, indent=2) if args.json else format_models(rows))
    return 1 if any("error" in row for row in rows) else 0
