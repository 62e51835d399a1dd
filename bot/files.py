"""File identity: a file's sha256, streamed and cached per (path, size, mtime).

A leaf module (standard library only): the model loader, trained-model folders, the training
manifests, the dataset reports and the AgreeMate importer all hash through it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

FileKey = tuple[str, int, int]

_lock = threading.Lock()
_sha_cache: dict[FileKey, str] = {}


def file_key(path: str | Path) -> FileKey:
    """(resolved path, size, mtime in ns): changes whenever the file's content may have."""
    path = Path(path)
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def file_sha256(path: str | Path) -> str:
    """The file's sha256 (hex), streamed, cached per (path, size, mtime)."""
    path = Path(path)
    key = file_key(path)
    with _lock:
        cached = _sha_cache.get(key)
    if cached is not None:
        return cached
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    with _lock:
        _sha_cache[key] = digest
    return digest
