"""The loopback Discord itself: it enforces Discord's rules, over plain HTTP and WebSocket.

These talk to it the way any client would (aiohttp), so each rule is seen refusing what Discord
refuses; the end-to-end tests (test_discord_e2e_*.py) then hold the bot to the same rules.
"""

from __future__ import annotations

import json
import zlib

import aiohttp
import pytest
from discord_e2e import spec_path

from tests.loopback_discord import CommandNotSynced, Driver, LoopbackDiscord
from tests.loopback_discord import state as st

EPHEMERAL = 1 << 6
COMMAND = {"name": "ping", "description": "Ping", "type": 1, "options": [
    {"name": "word", "description": "A word", "type": 3, "autocomplete": True}]}


@pytest.fixture
async def loop():
    d = await LoopbackDiscord(spec_path=spec_path()).start()
    d.guild = d.add_guild("Rules")
    d.text = d.add_channel(d.guild, "general")
    d.news = d.add_channel(d.guild, "news", st.NEWS)
    d.alice = d.add_member(d.guild, d.add_user("alice"))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {d.token}"}) as http:
        d.http = http
        yield d
    await d.stop()


async def call(d, method, path, body=None):
    async with d.http.request(method, d.api_base + path, json=body) as r:
        assert r.headers.get("Content-Type") in (None, "application/json")  # exactly, no charset
        return r.status, (await r.json() if r.status != 204 else None)


async def synced(d):
    status, _ = await call(d, "PUT", f"/applications/{d.application_id}/commands", [COMMAND])
    assert status == 200
    return Driver(d)


async def interaction(d, kind=2):
    drive = await synced(d)
    if kind == 4:
        data = drive._command_data(d.guild, "ping", {"word": "he"}, focused="word")
    else:
        data = drive._command_data(d.guild, "ping", {})
    return await drive._send(d.alice, d.text, kind, data)


async def callback(d, ix, body):
    return await call(d, "POST", f"/interactions/{ix.id}/{ix.token}/callback?with_response=1", body)


async def test_the_initial_response_is_due_within_3_s(loop):
    ix = await interaction(loop)
    loop.advance(3.1)
    status, body = await callback(loop, ix, {"type": 4, "data": {"content": "late"}})
    assert (status, body["code"]) == (404, 10062)


async def test_a_second_acknowledgement_is_refused(loop):
    ix = await interaction(loop)
    status, body = await callback(loop, ix, {"type": 5})
    assert status == 200 and body["interaction"]["response_message_loading"]
    assert body["resource"]["type"] == 5
    status, body = await callback(loop, ix, {"type": 4, "data": {"content": "again"}})
    assert (status, body["code"]) == (400, 40060)


async def test_interaction_tokens_last_15_minutes(loop):
    ix = await interaction(loop)
    await callback(loop, ix, {"type": 5})
    loop.advance(15 * 60 + 1)
    status, body = await call(loop, "POST", f"/webhooks/{loop.application_id}/{ix.token}?wait=true",
                              {"content": "too late"})
    assert (status, body["code"]) == (401, 50027)


async def test_the_first_follow_up_keeps_the_deferrals_visibility(loop):
    public = await interaction(loop)
    await callback(loop, public, {"type": 5})
    _, msg = await call(loop, "POST", f"/webhooks/{loop.application_id}/{public.token}?wait=true",
                        {"content": "meant to be private", "flags": EPHEMERAL})
    assert not msg["flags"] & EPHEMERAL and loop.private_shown_publicly  # shown to everyone
    _, second = await call(loop, "POST", f"/webhooks/{loop.application_id}/{public.token}?wait=true",
                           {"content": "private now", "flags": EPHEMERAL})
    assert second["flags"] & EPHEMERAL and second["id"] != msg["id"]
    private = await interaction(loop)
    await callback(loop, private, {"type": 5, "data": {"flags": EPHEMERAL}})
    _, msg = await call(loop, "POST", f"/webhooks/{loop.application_id}/{private.token}?wait=true",
                        {"content": "stays private"})
    assert msg["flags"] & EPHEMERAL
    # deleting the thinking message first lets a private answer follow a public deferral
    again = await interaction(loop)
    await callback(loop, again, {"type": 5})
    status, _ = await call(loop, "DELETE",
                           f"/webhooks/{loop.application_id}/{again.token}/messages/@original")
    _, msg = await call(loop, "POST", f"/webhooks/{loop.application_id}/{again.token}?wait=true",
                        {"content": "private", "flags": EPHEMERAL})
    assert status == 204 and msg["flags"] & EPHEMERAL and len(loop.private_shown_publicly) == 1


async def test_message_and_embed_limits(loop):
    status, body = await call(loop, "POST", f"/channels/{loop.text.id}/messages", {"content": "x" * 2001})
    assert (status, body["code"]) == (400, 50035) and "2000" in body["message"]
    assert not loop.schema_problems  # 4,000 passes the description: the limit is coded beside it
    status, body = await call(loop, "POST", f"/channels/{loop.text.id}/messages",
                              {"embeds": [{"title": "t" * 257}]})
    assert (status, body["code"]) == (400, 50035)
    assert loop.schema_problems and "title" in loop.schema_problems[0].message
    status, body = await call(loop, "POST", f"/channels/{loop.text.id}/messages",
                              {"embeds": [{"description": "d" * 3500}] * 2})
    assert (status, body["code"]) == (400, 50035) and "7000 characters together" in body["message"]
    status, body = await call(loop, "POST", f"/channels/{loop.text.id}/messages", {})
    assert (status, body["code"]) == (400, 50006)


async def test_thread_types_follow_the_parent(loop):
    thread = {"name": "t", "auto_archive_duration": 1440}
    status, body = await call(loop, "POST", f"/channels/{loop.news.id}/threads", {**thread, "type": 11})
    assert (status, body["code"]) == (400, 50024)
    status, body = await call(loop, "POST", f"/channels/{loop.news.id}/threads", {**thread, "type": 10})
    assert status == 200 and body["type"] == 10
    status, body = await call(loop, "POST", f"/channels/{loop.text.id}/threads", {**thread, "type": 10})
    assert (status, body["code"]) == (400, 50024)


async def test_the_active_thread_cap(loop):
    loop.active_thread_cap = 1
    thread = {"name": "t", "auto_archive_duration": 1440, "type": 11}
    status, first = await call(loop, "POST", f"/channels/{loop.text.id}/threads", thread)
    status, body = await call(loop, "POST", f"/channels/{loop.text.id}/threads", thread)
    assert (status, body["code"]) == (400, 160006)
    await call(loop, "PATCH", f"/channels/{first['id']}", {"archived": True})
    status, _ = await call(loop, "POST", f"/channels/{loop.text.id}/threads", thread)
    assert status == 200  # archived threads do not count


async def test_missing_permissions(loop):
    loop.text.deny[loop.bot_user.id] = st.PERMISSIONS["send_messages"]
    status, body = await call(loop, "POST", f"/channels/{loop.text.id}/messages", {"content": "hi"})
    assert (status, body["code"]) == (403, 50013)


async def test_autocomplete_takes_at_most_25_choices(loop):
    ix = await interaction(loop, kind=4)
    choices = [{"name": f"c{i}", "value": f"c{i}"} for i in range(26)]
    status, body = await callback(loop, ix, {"type": 8, "data": {"choices": choices}})
    assert (status, body["code"]) == (400, 50035)
    ix = await interaction(loop, kind=4)
    status, _ = await callback(loop, ix, {"type": 8, "data": {"choices": choices[:25]}})
    assert status == 200 and len(ix.choices) == 25


async def test_only_synced_commands_can_be_invoked(loop):
    drive = Driver(loop)
    with pytest.raises(CommandNotSynced):
        await drive.invoke(loop.alice, loop.text, "ping", wait=False)
    await synced(loop)
    with pytest.raises(CommandNotSynced):
        await drive.invoke(loop.alice, loop.text, "ping", wait=False, colour="red")


async def test_a_rate_limit_answer_as_discord_gives_it(loop):
    loop.rate_limit("POST", r"/messages$", retry_after=0.25)
    async with loop.http.post(f"{loop.api_base}/channels/{loop.text.id}/messages",
                              json={"content": "hi"}) as r:
        assert r.status == 429 and r.headers["Via"] and (await r.json())["retry_after"] == 0.25
    status, _ = await call(loop, "POST", f"/channels/{loop.text.id}/messages", {"content": "hi"})
    assert status == 200


async def test_gateway_zlib_stream_hello_identify_ready(loop):
    async with loop.http.ws_connect(loop.gateway_url + "?v=10&encoding=json&compress=zlib-stream") as ws:
        inflate = zlib.decompressobj()
        frame = await ws.receive_bytes()
        assert frame.endswith(b"\x00\x00\xff\xff")  # Z_SYNC_FLUSH per frame
        assert json.loads(inflate.decompress(frame))["op"] == 10
        await ws.send_json({"op": 2, "d": {"token": loop.token, "intents": 1 << 15,
                                           "properties": {}}})
        ready = json.loads(inflate.decompress(await ws.receive_bytes()))
        assert ready["t"] == "READY" and ready["d"]["guilds"][0]["unavailable"]
        guild = json.loads(inflate.decompress(await ws.receive_bytes()))
        assert guild["t"] == "GUILD_CREATE" and guild["d"]["name"] == "Rules"
    async with loop.http.ws_connect(loop.gateway_url + "?v=10&encoding=json") as ws:
        assert (await ws.receive_json())["op"] == 10  # plain text frames
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4004


async def test_the_end_to_end_guard_refuses_connections_beyond_127_0_0_1():
    import socket

    from discord_e2e import only_loopback

    with only_loopback() as refused, socket.socket() as sock, \
            pytest.raises(OSError, match="only 127.0.0.1"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never reached
    assert refused == ["('192.0.2.1', 443)"]


async def test_the_watch_script_prints_a_whole_game(capsys):
    from tests.loopback_discord import watch

    assert await watch.main([]) == 0
    out = capsys.readouterr().out
    assert "#general alice: /haggle role:buyer" in out
    assert "bob clicks accept" in out and "This is alice's game" in out
    assert "(only you see this)" in out and "Deal at $" in out
    assert out.rstrip().endswith("0 schema violations, 0 refusals, 0 private replies shown publicly")
