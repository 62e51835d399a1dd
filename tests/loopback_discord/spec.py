"""Request bodies checked against Discord's official OpenAPI description, plus the limits it lacks.

``SpecValidator`` matches a request (method, path under /api/v10) to the OpenAPI operation and
validates its JSON body with jsonschema's Draft 2020-12 validator against the operation's
``requestBody`` schema (``$ref``s resolved inside the document). The description has no gateway
events and misses some limits Discord enforces; ``extra_limits`` codes those beside it:
bots' message content is 2,000 characters (the description allows 4,000), the embed totals,
and the component limits. Thread type vs parent type needs the channel, so the server checks it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:discord-openapi"
CONTENT_LIMIT = 2000
EMBED_LIMITS = {"title": 256, "description": 4096, "footer": 2048, "author": 256,
                "field_name": 256, "field_value": 1024, "fields": 25, "total": 6000, "embeds": 10}
BUTTON_LABEL_LIMIT = 80
CUSTOM_ID_LIMIT = 100
ROWS_LIMIT = 5
ROW_ITEMS_LIMIT = 5


@dataclass
class Problem:
    """A request Discord would refuse: where, and why."""

    route: str
    kind: str        # "schema" (the OpenAPI description) or "rule" (a limit coded here)
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.route}: {self.message}"


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class SpecValidator:
    """Validates request bodies against ``openapi.json``."""

    def __init__(self, path: str | Path) -> None:
        self.spec = json.loads(Path(path).read_text())
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(SPEC_URI, resource)
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in self.spec["paths"]:
            regex = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
            self._routes.append((re.compile(f"^{regex}$"), template))
        # Literal segments first (/messages/@original before /messages/{message_id}).
        self._routes.sort(key=lambda r: r[1].count("{"))
        self._validators: dict[tuple[str, str], Draft202012Validator | None] = {}

    def template(self, path: str) -> str | None:
        for regex, template in self._routes:
            if regex.match(path):
                return template
        return None

    def validator(self, method: str, template: str) -> Draft202012Validator | None:
        key = (method, template)
        if key not in self._validators:
            operation = self.spec["paths"][template].get(method.lower(), {})
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                ref = f"{SPEC_URI}#/" + _pointer("paths", template, method.lower(), "requestBody",
                                                   "content", "application/json", "schema")
                self._validators[key] = Draft202012Validator({"$ref": ref}, registry=self.registry)
            else:
                self._validators[key] = None
        return self._validators[key]

    def check(self, method: str, path: str, body: Any) -> list[Problem]:
        """Problems with ``body`` for ``method path`` (path relative to /api/v10)."""
        template = self.template(path)
        if template is None:
            return [Problem(f"{method} {path}", "schema", "no such route in Discord's API")]
        if method.lower() not in self.spec["paths"][template]:
            return [Problem(f"{method} {template}", "schema", "method not allowed on this route")]
        validator = self.validator(method, template)
        if validator is None or body is None:
            return []
        body = snowflakes_as_strings(body)
        return [Problem(f"{method} {template}", "schema",
                        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:300]}")
                for e in validator.iter_errors(body)]


def snowflakes_as_strings(value: Any) -> Any:
    """Integers of snowflake size as the strings the description declares. Discord accepts a
    snowflake as a JSON number too (discord.py sends ``allowed_mentions.users`` that way); the
    description only allows strings, so this one difference is bridged before validating."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value >= 1 << 32:
        return str(value)
    if isinstance(value, list):
        return [snowflakes_as_strings(v) for v in value]
    if isinstance(value, dict):
        out = {k: snowflakes_as_strings(v) for k, v in value.items()}
        # An upload's attachment id is the index of its ``files[n]`` part; discord.py sends it
        # as a number, which Discord takes (the description wants a snowflake string).
        for attachment in out.get("attachments") or []:
            if isinstance(attachment, dict) and isinstance(attachment.get("id"), int):
                attachment["id"] = str(attachment["id"])
        return out
    return value


def _embed_size(embed: dict[str, Any]) -> int:
    """The characters Discord counts towards the 6,000 of a message's embeds."""
    return (len(embed.get("title") or "") + len(embed.get("description") or "")
            + len((embed.get("footer") or {}).get("text") or "")
            + len((embed.get("author") or {}).get("name") or "")
            + sum(len(f.get("name") or "") + len(f.get("value") or "")
                  for f in embed.get("fields") or []))


def _embed_problems(embed: dict[str, Any]) -> list[str]:
    out = []
    for key in ("title", "description"):
        text = embed.get(key) or ""
        if len(text) > EMBED_LIMITS[key]:
            out.append(f"embed {key} is {len(text)} characters (max {EMBED_LIMITS[key]})")
    footer = (embed.get("footer") or {}).get("text") or ""
    author = (embed.get("author") or {}).get("name") or ""
    if len(footer) > EMBED_LIMITS["footer"]:
        out.append(f"embed footer is {len(footer)} characters (max {EMBED_LIMITS['footer']})")
    if len(author) > EMBED_LIMITS["author"]:
        out.append(f"embed author is {len(author)} characters (max {EMBED_LIMITS['author']})")
    fields = embed.get("fields") or []
    if len(fields) > EMBED_LIMITS["fields"]:
        out.append(f"embed has {len(fields)} fields (max {EMBED_LIMITS['fields']})")
    for f in fields:
        name, value = f.get("name") or "", f.get("value") or ""
        if not name or not value:
            out.append("embed field with an empty name or value")
        if len(name) > EMBED_LIMITS["field_name"]:
            out.append(f"embed field name is {len(name)} characters (max 256)")
        if len(value) > EMBED_LIMITS["field_value"]:
            out.append(f"embed field value is {len(value)} characters (max 1024)")
    return out


def _component_problems(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    if len(rows) > ROWS_LIMIT:
        out.append(f"{len(rows)} action rows (max {ROWS_LIMIT})")
    for row in rows:
        items = row.get("components") or []
        if row.get("type") == 1 and len(items) > ROW_ITEMS_LIMIT:
            out.append(f"an action row holds {len(items)} components (max {ROW_ITEMS_LIMIT})")
        for item in items:
            if len(item.get("label") or "") > BUTTON_LABEL_LIMIT:
                out.append(f"button label over {BUTTON_LABEL_LIMIT} characters")
            if len(item.get("custom_id") or "") > CUSTOM_ID_LIMIT:
                out.append(f"custom_id over {CUSTOM_ID_LIMIT} characters")
    return out


def message_problems(body: dict[str, Any], *, files: int = 0) -> list[str]:
    """What Discord refuses in a message body beyond the description: bots' 2,000-character
    content, embed and component limits, an empty message."""
    out = []
    content = body.get("content") or ""
    if len(content) > CONTENT_LIMIT:
        out.append(f"content is {len(content)} characters (bots may send {CONTENT_LIMIT})")
    embeds = body.get("embeds") or []
    if len(embeds) > EMBED_LIMITS["embeds"]:
        out.append(f"{len(embeds)} embeds (max {EMBED_LIMITS['embeds']})")
    total = sum(_embed_size(e) for e in embeds)
    if total > EMBED_LIMITS["total"]:
        out.append(f"embeds hold {total} characters together (max {EMBED_LIMITS['total']})")
    for embed in embeds:
        out.extend(_embed_problems(embed))
    out.extend(_component_problems(body.get("components") or []))
    return out


def is_empty_message(body: dict[str, Any], *, files: int = 0) -> bool:
    return not (body.get("content") or body.get("embeds") or files or body.get("components")
                or body.get("sticker_ids") or body.get("poll") or body.get("attachments"))
