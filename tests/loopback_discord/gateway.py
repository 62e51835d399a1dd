"""The loopback Discord's gateway: a WebSocket speaking Discord's gateway protocol v10.

HELLO, IDENTIFY -> READY + GUILD_CREATE (the guilds of the session's shard), heartbeats and
their ACKs, RESUME with the replay of every event the session missed, and the faults a bot
must survive: op 7 (reconnect, then RESUME), op 9 (invalid session: identify again), and the
closes 4004 (authentication failed) and 4014 (a privileged intent that is not allowed).

``compress=zlib-stream`` gets one zlib compressor for the connection, each frame flushed with
Z_SYNC_FLUSH (what discord.py's decompressor looks for); any other request gets text frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.loopback_discord.server import LoopbackDiscord

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    0, 1, 2, 6, 7, 9, 10, 11)
MESSAGE_CONTENT_INTENT = 1 << 15
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | MESSAGE_CONTENT_INTENT


@dataclass
class Session:
    """A gateway session: survives its connections (RESUME) until invalidated."""

    id: str
    shard: tuple[int, int]
    intents: int
    seq: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    socket: Connection | None = None
    valid: bool = True
    identifies: int = 1
    resumes: int = 0

    def wants(self, guild_id: int | None) -> bool:
        shard_id, count = self.shard
        return ((guild_id or 0) >> 22) % count == shard_id


class Connection:
    """One WebSocket connection of a client."""

    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        self._zlib = zlib.compressobj() if compress else None
        self.lock = asyncio.Lock()
        self.session: Session | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":"))
        async with self.lock:
            if self.ws.closed:
                return
            if self._zlib is None:
                await self.ws.send_str(data)
            else:
                frame = self._zlib.compress(data.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(frame)


class Gateway:
    """The gateway endpoint and its sessions."""

    def __init__(self, discord: LoopbackDiscord) -> None:
        self.discord = discord
        self.sessions: dict[str, Session] = {}
        self.connections: list[Connection] = []
        self.heartbeat_interval_ms = 41250
        self.heartbeats = 0
        self.next_close: int | None = None  # close code for the next IDENTIFY (4004, ...)
        self.allowed_intents = PRIVILEGED_INTENTS
        self._connected = asyncio.Event()

    # ----------------------------------------------------------------- the socket

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Connection(ws, request.query.get("compress") == "zlib-stream")
        self.connections.append(conn)
        await conn.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                         "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._received(conn, json.loads(msg.data))
        finally:
            if conn.session is not None and conn.session.socket is conn:
                conn.session.socket = None
            self.connections.remove(conn)
        return ws

    async def _received(self, conn: Connection, msg: dict[str, Any]) -> None:
        op, data = msg.get("op"), msg.get("d")
        if op == HEARTBEAT:
            self.heartbeats += 1
            await conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)
        elif op in (3, 4, 8):  # presence, voice state, request guild members: nothing to do
            return
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode")

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> None:
        d = self.discord
        if self.next_close is not None:
            code, self.next_close = self.next_close, None
            await conn.ws.close(code=code, message=b"fault injected")
            return
        if data.get("token") != d.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.allowed_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard = tuple(data.get("shard") or (0, 1))
        if not 0 <= shard[0] < shard[1]:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        session = Session(id=secrets.token_hex(16), shard=(shard[0], shard[1]), intents=intents)
        self.sessions[session.id] = session
        conn.session, session.socket = session, conn
        guilds = [g for g in d.guilds.values() if session.wants(g.id)]
        ready = {"v": 10, "user": d.bot_user.payload(), "session_id": session.id,
                 "resume_gateway_url": d.gateway_url, "session_type": "normal",
                 "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                 "application": {"id": str(d.application_id), "flags": 0},
                 "private_channels": [], "relationships": [], "presences": [],
                 "geo_ordered_rtc_regions": [], "user_settings": {}, "auth": {}}
        if data.get("shard") is not None:
            ready["shard"] = list(shard)
        await self._send_dispatch(session, "READY", ready)
        for guild in guilds:
            await self._send_dispatch(session, "GUILD_CREATE", d.guild_create_payload(guild))
        self._connected.set()

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        session = self.sessions.get(data.get("session_id", ""))
        if session is None or not session.valid or data.get("token") != self.discord.token:
            await conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        session.resumes += 1
        if session.socket is not None and session.socket is not conn:
            await session.socket.ws.close(code=4000)
        conn.session, session.socket = session, conn
        seq = int(data.get("seq") or 0)
        for event in [e for e in session.buffer if e["s"] > seq]:
            await conn.send(event)
        session.seq += 1
        await conn.send({"op": DISPATCH, "t": "RESUMED", "s": session.seq, "d": {}})

    # ----------------------------------------------------------------- events

    async def _send_dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.buffer.append(payload)
        del session.buffer[:-500]
        if session.socket is not None:
            await session.socket.send(payload)

    async def dispatch(self, event: str, data: dict[str, Any], *, guild_id: int | None) -> None:
        """Send ``event`` to every live session of the shard that owns ``guild_id``; a session
        between connections keeps it for its RESUME."""
        for session in list(self.sessions.values()):
            if session.valid and session.wants(guild_id):
                await self._send_dispatch(session, event, data)

    # ----------------------------------------------------------------- faults

    def live_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.valid]

    async def reconnect(self, session: Session | None = None) -> None:
        """op 7: the client must reconnect and RESUME."""
        for s in [session] if session else self.live_sessions():
            if s.socket is not None:
                await s.socket.send({"op": RECONNECT, "d": None, "s": None, "t": None})

    async def drop(self, session: Session | None = None) -> None:
        """Close the connection abnormally (a network blip): the client resumes."""
        for s in [session] if session else self.live_sessions():
            if s.socket is not None:
                await s.socket.ws.close(code=4000, message=b"Unknown error.")

    async def invalidate(self, session: Session | None = None, *, resumable: bool = False) -> None:
        """op 9: the session is gone (``resumable`` False: the client must IDENTIFY again)."""
        for s in [session] if session else self.live_sessions():
            if not resumable:
                s.valid = False
            if s.socket is not None:
                await s.socket.send({"op": INVALID_SESSION, "d": resumable, "s": None, "t": None})

    async def close_all(self) -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=1001)
