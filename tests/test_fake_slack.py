"""The Slack fake works with the real slack_sdk clients, so bot tests can trust it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.say.async_say import AsyncSay
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack, FakeSocketMode

TEAM = "T1"
TOKEN = "xoxb-t1"
APP_TOKEN = "xapp-1-test"
MEMBERS = ["U1", "U2", "U3", "U4", "U5"]
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "Lesson 1"}}
MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Quiz"}, "blocks": [SECTION]}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk sends even 127.0.0.1 through HTTPS_PROXY; keep every call local."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """A running fake with one workspace, five people and a channel holding them all."""
    slack = FakeSlack()
    await slack.start()
    slack.add_workspace(TEAM, TOKEN)
    for number, user_id in enumerate(MEMBERS, start=1):
        slack.add_user(TEAM, user_id, f"Person {number}", is_admin=number == 1, locale="da-DK")
    slack.add_channel(TEAM, "C1", "general", MEMBERS)
    slack.add_usergroup(TEAM, "S1", "security", ["U1", "U2"])
    yield slack
    await slack.stop()


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    """The real client, pointed at the fake."""
    return AsyncWebClient(token=TOKEN, base_url=fake.api_url)


async def test_auth_test_names_the_bot(client: AsyncWebClient) -> None:
    """slack_bolt relies on these fields of auth.test."""
    answer = await client.auth_test()
    assert answer["team_id"] == TEAM
    assert answer["user_id"] == "UBOT"
    assert answer["bot_id"].startswith("B")
    assert answer["is_enterprise_install"] is False


async def test_post_and_update_a_message(fake: FakeSlack, client: AsyncWebClient) -> None:
    """Posts are recorded with increasing ts; updates must name a real message."""
    first = await client.chat_postMessage(channel="C1", text="Hi", blocks=[SECTION])
    second = await client.chat_postMessage(channel="C1", text="Again", thread_ts=first["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"] == [SECTION]
    assert (fake.messages[0]["text"], fake.messages[0]["channel"]) == ("Hi", "C1")
    assert fake.messages[1]["thread_ts"] == first["ts"]

    updated = await client.chat_update(channel="C1", ts=first["ts"], text="Edited")
    assert updated["message"]["blocks"] == [SECTION]
    assert fake.updates == [
        {"team_id": TEAM, "channel": "C1", "ts": first["ts"], "text": "Edited", "blocks": None}
    ]
    with pytest.raises(SlackApiError) as refused:
        await client.chat_update(channel="C1", ts="1.000000", text="Nope")
    assert refused.value.response["error"] == "message_not_found"


async def test_post_to_a_user_lands_in_their_dm(fake: FakeSlack, client: AsyncWebClient) -> None:
    """A user id as channel means the DM, the same one conversations.open gives."""
    opened = await client.conversations_open(users="U2")
    posted = await client.chat_postMessage(channel="U2", text="Welcome")
    assert opened["channel"]["id"] == posted["channel"] == fake.dm_channel(TEAM, "U2")
    again = await client.conversations_open(users="U2")
    assert again["already_open"] is True


async def test_form_encoded_blocks_are_decoded(fake: FakeSlack, client: AsyncWebClient) -> None:
    """Blocks sent as a JSON string in a form arrive as a list; broken ones are refused."""
    form = {"channel": "C1", "blocks": '[{"type": "divider"}]'}
    await client.api_call("chat.postMessage", data=form)
    assert fake.messages[-1]["blocks"] == [{"type": "divider"}]
    with pytest.raises(SlackApiError) as refused:
        await client.api_call("chat.postMessage", data={"channel": "C1", "blocks": "[{'x'"})
    assert refused.value.response["error"] == "invalid_blocks"


async def test_ephemeral_needs_a_member(fake: FakeSlack, client: AsyncWebClient) -> None:
    """Ephemeral messages go only to channel members."""
    fake.add_user(TEAM, "U9", "Outsider")
    answer = await client.chat_postEphemeral(channel="C1", user="U3", text="Psst")
    assert fake.messages[-1]["user"] == "U3"
    assert fake.messages[-1]["ts"] == answer["message_ts"]
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postEphemeral(channel="C1", user="U9", text="Psst")
    assert refused.value.response["error"] == "user_not_in_channel"


async def test_views_open_update_and_publish(fake: FakeSlack, client: AsyncWebClient) -> None:
    """Views get ids and hashes; a stale hash is refused like in Slack."""
    opened = (await client.views_open(trigger_id="1.2.abc", view=MODAL))["view"]
    assert opened["id"].startswith("V")
    updated = await client.views_update(view_id=opened["id"], hash=opened["hash"], view=MODAL)
    assert updated["view"]["id"] == opened["id"]
    with pytest.raises(SlackApiError) as refused:
        await client.views_update(view_id=opened["id"], hash="0.stale", view=MODAL)
    assert refused.value.response["error"] == "hash_conflict"

    home = {"type": "home", "blocks": [SECTION]}
    published = await client.views_publish(user_id="U1", view=home)
    assert published["view"]["type"] == "home"
    methods = [(view["method"], view["user_id"]) for view in fake.views]
    assert methods == [("views.open", None), ("views.update", None), ("views.publish", "U1")]


async def test_users_info(client: AsyncWebClient) -> None:
    """The fields the bot reads to decide who to enrol and in which language."""
    user = (await client.users_info(user="U1", include_locale=True))["user"]
    assert user["is_admin"] is True and user["is_bot"] is False and user["deleted"] is False
    assert user["profile"]["real_name"] == "Person 1"
    assert user["tz"] == "Europe/Copenhagen" and user["tz_offset"] in (3600, 7200)
    assert user["locale"] == "da-DK"
    assert "locale" not in (await client.users_info(user="U1"))["user"]
    with pytest.raises(SlackApiError) as refused:
        await client.users_info(user="U404")
    assert refused.value.response["error"] == "user_not_found"


async def test_users_list_has_bots_and_slackbot(client: AsyncWebClient) -> None:
    """Like real Slack, the list holds the bot and Slackbot, which is not flagged is_bot."""
    members = [user async for page in await client.users_list(limit=3) for user in page["members"]]
    by_id = {user["id"]: user for user in members}
    assert set(by_id) == {"USLACKBOT", "UBOT", *MEMBERS}
    assert by_id["UBOT"]["is_bot"] is True and by_id["USLACKBOT"]["is_bot"] is False


async def test_members_paging(fake: FakeSlack, client: AsyncWebClient) -> None:
    """Five members with limit 2 take three pages, the last with an empty cursor."""
    pages = []
    async for page in await client.conversations_members(channel="C1", limit=2):
        pages.append(dict(page.data))  # the SDK reuses one response object for every page
    assert [page["members"] for page in pages] == [["U1", "U2"], ["U3", "U4"], ["U5"]]
    assert pages[-1]["response_metadata"]["next_cursor"] == ""
    assert len(fake.calls_to("conversations.members", TEAM)) == 3


async def test_channel_and_usergroup_lookups(client: AsyncWebClient) -> None:
    """conversations.info and usergroups.users.list answer with the configured data."""
    info = await client.conversations_info(channel="C1", include_num_members=True)
    assert info["channel"]["name"] == "general" and info["channel"]["num_members"] == 5
    assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["U1", "U2"]


async def test_files_upload_v2(fake: FakeSlack, client: AsyncWebClient) -> None:
    """All three steps of files_upload_v2 run against the fake and the bytes arrive."""
    pdf = b"%PDF-1.7 certificate"
    answer = await client.files_upload_v2(
        channel="C1", filename="cert.pdf", title="Certificate", content=pdf, initial_comment="Yay"
    )
    assert answer["file"]["title"] == "Certificate"
    assert [call.method for call in fake.calls] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    (shared,) = fake.files
    assert shared["content"] == pdf and shared["filename"] == "cert.pdf"
    assert shared["channel_id"] == "C1" and shared["initial_comment"] == "Yay"


async def test_bad_tokens_are_refused(fake: FakeSlack) -> None:
    """Unknown and missing tokens fail like Slack's, and are recorded."""
    with pytest.raises(SlackApiError) as unknown:
        await AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
    assert unknown.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=fake.api_url).auth_test()
    assert missing.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as nonsense:
        await AsyncWebClient(token=TOKEN, base_url=fake.api_url).api_call("no.such.method")
    assert nonsense.value.response["error"] == "unknown_method"
    assert [call.error for call in fake.calls] == ["invalid_auth", "not_authed", "unknown_method"]


async def test_fail_injects_one_error(fake: FakeSlack, client: AsyncWebClient) -> None:
    """fail() answers ok false once, then the method works again."""
    fake.fail("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C1", text="x")
    await client.chat_postMessage(channel="C1", text="y")
    assert [message["text"] for message in fake.messages] == ["y"]
    assert len(fake.calls_to("chat.postMessage")) == 1


async def test_rate_limit_without_a_retry_handler_raises(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    """By default slack_sdk retries only connection errors, so a 429 surfaces."""
    fake.rate_limit("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        await client.chat_postMessage(channel="C1", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert fake.messages == []


async def test_rate_limit_retry_handler_waits_and_retries(fake: FakeSlack) -> None:
    """AsyncRateLimitErrorRetryHandler honours Retry-After and the message is posted once."""
    retrying = AsyncWebClient(
        token=TOKEN, base_url=fake.api_url, retry_handlers=[AsyncRateLimitErrorRetryHandler()]
    )
    fake.rate_limit("chat.postMessage", retry_after=1, team_id=TEAM)
    started = time.monotonic()
    await retrying.chat_postMessage(channel="C1", text="Hello")
    assert time.monotonic() - started >= 1
    assert [call.status for call in fake.calls] == [429, 200]
    assert len(fake.messages) == 1


async def test_latency_is_applied(fake: FakeSlack, client: AsyncWebClient) -> None:
    """Per-method delays let tests observe concurrency."""
    fake.delays["users.info"] = 0.3
    started = time.monotonic()
    await asyncio.gather(*(client.users_info(user=user) for user in MEMBERS))
    assert 0.3 <= time.monotonic() - started < 1.0
    assert max(call.at for call in fake.calls) < min(call.done or 0 for call in fake.calls)


async def test_oauth_v2_access_installs_a_token(fake: FakeSlack) -> None:
    """A code buys a bot token that then works, once."""
    fake.add_oauth_code("code-1", TEAM, "U1")
    anonymous = AsyncWebClient(base_url=fake.api_url)
    answer = await anonymous.oauth_v2_access(client_id="1.2", client_secret="s", code="code-1")
    assert answer["team"]["id"] == TEAM and answer["authed_user"]["id"] == "U1"
    assert answer["token_type"] == "bot" and answer["bot_user_id"] == "UBOT"
    installed = AsyncWebClient(token=answer["access_token"], base_url=fake.api_url)
    assert (await installed.auth_test())["team_id"] == TEAM
    with pytest.raises(SlackApiError) as reused:
        await anonymous.oauth_v2_access(client_id="1.2", client_secret="s", code="code-1")
    assert reused.value.response["error"] == "invalid_code"


def acking_client(fake: FakeSlack, **options: float) -> SocketModeClient:
    """A real Socket Mode client that acknowledges every envelope."""
    web_client = AsyncWebClient(base_url=fake.api_url)
    client = SocketModeClient(app_token=APP_TOKEN, web_client=web_client, **options)

    async def ack(client: SocketModeClient, request: SocketModeRequest) -> None:
        response = SocketModeResponse(envelope_id=request.envelope_id, payload={"seen": True})
        await client.send_socket_mode_response(response)

    client.socket_mode_request_listeners.append(ack)
    return client


async def test_socket_mode_ack_and_reconnect(fake: FakeSlack) -> None:
    """Envelopes are acked; after a disconnect the client reconnects despite one refusal."""
    socket = FakeSocketMode(fake)
    fake.add_app_token(APP_TOKEN)
    client = acking_client(fake, ping_interval=0.5)
    try:
        await client.connect()
        await socket.wait_connected(1)
        envelope_id = await socket.send_envelope({"event": {"type": "app_home_opened"}})
        assert (await socket.wait_ack(envelope_id, timeout=3))["payload"] == {"seen": True}

        socket.refuse_next(1)
        await socket.send_disconnect()
        await socket.wait_connected(2, timeout=8)
        second = await socket.send_envelope({"command": "/nis2"}, type="slash_commands")
        await socket.wait_ack(second, timeout=3)
    finally:
        await client.close()
    assert socket.connections == 2
    statuses = [call.error for call in fake.calls if call.method == "apps.connections.open"]
    assert statuses == [None, "internal_error", None]


async def test_socket_mode_retries_a_refused_handshake(fake: FakeSlack) -> None:
    """slack_sdk retries the same URL after ping_interval when the handshake fails."""
    socket = FakeSocketMode(fake)
    fake.add_app_token(APP_TOKEN)
    socket.refuse_next(1, handshake=True)
    client = acking_client(fake, ping_interval=0.3)
    try:
        await client.connect()
        await socket.wait_connected(1, timeout=5)
    finally:
        await client.close()
    assert len(fake.calls_to("apps.connections.open")) == 1


async def test_bot_token_cannot_open_a_socket(fake: FakeSlack) -> None:
    """apps.connections.open wants the app-level token, not the bot token."""
    FakeSocketMode(fake)
    with pytest.raises(SlackApiError) as refused:
        await AsyncWebClient(base_url=fake.api_url).apps_connections_open(app_token=TOKEN)
    assert refused.value.response["error"] == "not_allowed_token_type"


async def test_bolt_app_over_socket_mode(fake: FakeSlack) -> None:
    """A slack_bolt AsyncApp authorises via auth.test, acks, and replies through the fake."""
    socket = FakeSocketMode(fake)
    fake.add_app_token(APP_TOKEN)
    app = AsyncApp(client=AsyncWebClient(token=TOKEN, base_url=fake.api_url))
    replied = asyncio.Event()

    @app.event("app_mention")
    async def mentioned(event: dict, say: AsyncSay) -> None:
        await say(text="Hej!", channel=event["channel"])
        replied.set()

    handler = AsyncSocketModeHandler(app, APP_TOKEN, ping_interval=0.5)
    try:
        await handler.connect_async()
        await socket.wait_connected(1)
        event = {"type": "app_mention", "user": "U1", "channel": "C1", "text": "<@UBOT> hi"}
        payload = {"type": "event_callback", "team_id": TEAM, "api_app_id": fake.app_id}
        envelope_id = await socket.send_envelope(payload | {"event": event, "event_id": "Ev1"})
        await socket.wait_ack(envelope_id, timeout=3)
        await asyncio.wait_for(replied.wait(), timeout=3)
    finally:
        await handler.close_async()
    assert fake.messages[0]["text"] == "Hej!" and fake.messages[0]["channel"] == "C1"
    assert fake.calls_to("auth.test", TEAM)


async def test_per_token_rate_limit_and_history_with_metadata(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    """Above the rate a token gets 429 with Retry-After; a posted key is found in the history."""
    fake.limit_rate(3, burst=3)
    metadata = {"event_type": "nis2_planned_send", "event_payload": {"key": "k1", "part": 0}}
    posted = await client.chat_postMessage(channel="U2", text="hi", metadata=metadata)
    await client.auth_test()
    await client.auth_test()
    with pytest.raises(SlackApiError) as refused:
        await client.auth_test()
    assert refused.value.response.status_code == 429
    assert refused.value.response.headers.get("Retry-After") == "1"
    await asyncio.sleep(0.7)  # two calls' worth trickles back at 3 a second
    history = await client.conversations_history(
        channel=posted["channel"], oldest="0", include_all_metadata=True
    )
    assert history["messages"][0]["metadata"]["event_payload"]["key"] == "k1"
    plain = await client.conversations_history(channel=posted["channel"], oldest="0")
    assert "metadata" not in plain["messages"][0]
