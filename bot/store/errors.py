"""sqlite3 errors as StoreErrors that say what happened to which file and what to do."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

from bot.errors import StoreError


def store_error(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """A StoreError that says what went wrong with ``path`` and what to do about it."""
    text = str(exc)
    low = text.lower()
    if "file is not a database" in low or "malformed" in low or "not a database" in low:
        return StoreError(
            f"{path} is not a haggle database: it is not SQLite or it is corrupt ({text}). "
            f"Nothing was written to it. Move it away, or pass --db with another path; "
            f"`sqlite3 {path} 'PRAGMA integrity_check'` says more about a damaged file")
    if "locked" in low or "busy" in low:
        return StoreError(
            f"{path} is locked by another process while {doing} ({text}): wait for the other "
            f"haggle command (or sqlite3 session) to finish, or use another --db")
    if "disk is full" in low or "database or disk is full" in low:
        return StoreError(
            f"disk full while {doing} in {path}: the write was rolled back and everything stored "
            f"before is intact; free some disk space and rerun the same command to continue")
    if "readonly" in low or "read-only" in low:
        return StoreError(f"{path} is read-only ({text}): make it writable or use another --db")
    if "unable to open" in low:
        return StoreError(f"cannot open {path} ({text}): check that its folder exists and is "
                          f"writable")
    return StoreError(f"database error while {doing} in {path}: {text}")


def translated(doing: str):
    """Decorator: sqlite3 errors raised by the method become StoreErrors naming the file."""

    def wrap(method):
        @functools.wraps(method)
        async def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise store_error(exc, self.path, doing) from exc

        return inner

    return wrap
