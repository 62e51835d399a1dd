"""manifest.json: what a trained role model is made of, committed next to its git-ignored files.

One manifest per adapters/<name>/ folder records the base (reference, file, sha256), the data
(files, sha256, example counts), the hyperparameters, the losses, every exported file (type,
size, sha256) and its verification, so a GGUF found on disk can be traced and checked. Stages
update their own section; every write is atomic (temp file, then rename), so a crash leaves the
previous manifest, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.files import file_sha256 as sha256_file  # streamed, cached per (path, size, mtime)
from bot.llm.adapters import MANIFEST, SCHEMA, read_manifest_file


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write JSON to ``path`` through a temp file in the same directory and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """The manifest of ``model_dir`` (bot.llm.adapters' reader: the schema version is checked),
    or an empty skeleton when there is none yet."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        return {"schema": SCHEMA}
    return read_manifest_file(path)


def update_manifest(model_dir: str | Path, **sections: Any) -> dict[str, Any]:
    """Replace the given top-level sections of the manifest and write it back atomically."""
    data = read_manifest(model_dir)
    data.update(sections)
    data["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(Path(model_dir) / MANIFEST, data)
    return data


def file_entry(path: str | Path, **extra: Any) -> dict[str, Any]:
    """A manifest record of one file: its name relative to the manifest, size and sha256."""
    path = Path(path)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path), **extra}


def versions() -> dict[str, str]:
    """Versions of the libraries that shaped the artefacts (absent ones are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("torch", "transformers", "peft", "gguf", "llama_cpp_python"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
