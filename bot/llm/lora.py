"""LoRA adapters as model options: ``[models.NAME] lora = "adapters/narrator"``.

llama.cpp applies a GGUF LoRA adapter file to its base at load (llama-cpp-python's
``Llama(lora_path=...)``). ``lora`` names either such a file or the folder `haggle train
adapter` wrote, whose manifest.json records the adapter file (name, bytes, sha256) and the base
it was trained on (its sha256). A folder resolves to its file only when:

- the file is there with the manifest's size and sha256 (it is the file that was verified);
- the base model being loaded has the sha256 the adapter was trained on (an adapter on another
  base loads without complaint in llama.cpp and writes garbage).

Errors say what to run. Edge module: reads files.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.errors import ModelError
from bot.files import file_sha256

MANIFEST = "manifest.json"


def adapter_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} cannot be read ({exc}); restore it from git or re-run "
                         "`haggle train adapter`") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("adapter"), dict):
        raise ModelError(f"{path} describes no LoRA adapter (no \"adapter\" section); point lora at "
                         "a folder `haggle train adapter --out DIR` wrote, or at a .gguf adapter file")
    return manifest


def resolve_lora(ref: str | Path, *, base: str | Path | None = None) -> Path:
    """The adapter file ``ref`` names, checked against its manifest and the ``base`` file."""
    ref = Path(ref)
    if ref.is_file():
        return ref
    if not ref.is_dir():
        raise ModelError(f"lora adapter {ref} does not exist; set [models.NAME] lora to an adapter "
                         "folder (e.g. adapters/narrator) or a .gguf LoRA file, or train one with "
                         "`haggle train adapter`")
    manifest = adapter_manifest(ref)
    entry = manifest["adapter"]
    path = ref / str(entry.get("file", ""))
    if not path.is_file():
        raise ModelError(f"{ref}: the adapter file {entry.get('file')!r} its manifest names is "
                         "missing; restore it from git or re-run `haggle train adapter`")
    if entry.get("bytes") is not None and path.stat().st_size != entry["bytes"]:
        raise ModelError(f"{path} has {path.stat().st_size} bytes, its manifest says {entry['bytes']}: "
                         "it is not the file that was verified; restore it from git")
    if file_sha256(path) != entry.get("sha256"):
        raise ModelError(f"{path}: sha256 differs from its manifest's: it is not the file that was "
                         "verified; restore it from git or re-run `haggle train adapter`")
    want = (manifest.get("base") or {}).get("sha256")
    if base is not None and want and file_sha256(base) != want:
        raise ModelError(f"{ref} was trained on a base with sha256 {want[:12]}…, but the model "
                         f"loaded is {base} ({file_sha256(base)[:12]}…): a LoRA adapter only works "
                         "on its own base; use that base model or drop lora")
    return path
