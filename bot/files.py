"""File identity: a file's sha256, streamed and cached per file identity.

A leaf module (standard library only): the model loader, trained-model folders, the training
manifests, the dataset reports and the AgreeMate importer all hash through it.

The sha256 cache is keyed by the file's identity, (st_dev, st_ino, size, mtime_ns, ctime_ns):
one stat, so asking again costs nothing, while any change of the file gives a new key. A file
overwritten with other bytes of the same size keeps its path and size but not its mtime, or,
when the mtime was put back (``cp -p``, ``touch -r``), not its ctime, which nothing can set;
a file renamed over it has another inode.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

FileKey = tuple[str, int, int]
FileIdentity = tuple[int, int, int, int, int]

_lock = threading.Lock()
_sha_cache: dict[FileIdentity, str] = {}


def file_identity(path: str | Path) -> FileIdentity:
    """(st_dev, st_ino, size, mtime_ns, ctime_ns) of the file ``path`` names (links followed)."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_key(path: str | Path) -> FileKey:
    """(resolved path, size, mtime in ns): changes whenever the file's content may have."""
    path = Path(path)
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def file_sha256(path: str | Path) -> str:
    """The file's sha256 (hex), streamed, cached per file identity (see above)."""
    path = Path(path)
    key = file_identity(path)
    with _lock:
        cached = _sha_cache.get(key)
    if cached is not None:
        return cached
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if file_identity(path) == key:  # not written to while it was read
        with _lock:
            _sha_cache[key] = digest
    return digest


def cache_home(env: str, name: str) -> Path:
    """A haggle cache folder: ``$env`` when set, else $XDG_CACHE_HOME/haggle/``name``
    (~/.cache/haggle/``name``)."""
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "haggle" / name
