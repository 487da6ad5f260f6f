"""The real botbuilder CloudAdapter against FakeConnector, end to end on 127.0.0.1 (C11-C19).

The bot side is production code, built by tests.fakes.teams_auth.adapter_for and served by
aiohttp; only the OpenID metadata URL and the token fetch point at the fake (see teams_auth).
Each test also pins down a botbuilder 4.17 behaviour the Teams adapter has to live with.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from botbuilder.core import ActivityHandler, MessageFactory, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
    ErrorResponseException,
)
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.bot_connector import (
    CONNECTOR_SCOPE,
    MULTI_TENANT_AUTHORITY,
    FakeConnector,
    aad_issuer_v2,
)
from tests.fakes.teams_auth import adapter_for

APP_ID = "6f1c2a4e-0000-4000-8000-00000000a001"
OTHER_APP_ID = "6f1c2a4e-0000-4000-8000-00000000b002"
PASSWORD = "app-secret"
TENANT = "7a3c0d2e-1111-4111-8111-0000000000aa"
OTHER_TENANT = "9b4d1e3f-2222-4222-8222-0000000000bb"
TEAM = "19:general-acme@thread.tacv2"
CHAT = "a:1ada-personal-chat"
ADA = {"id": "29:1ada", "aadObjectId": "aad-ada", "name": "Ada", "userPrincipalName": "ada@x.test"}
GRACE = {"id": "29:1grace", "aadObjectId": "aad-grace", "name": "Grace"}
ALAN = {"id": "29:1alan", "aadObjectId": "aad-alan", "name": "Alan"}
UNREACHABLE = ("BotNotInConversationRoster", "ConversationBlockedByUser", "BotDisabledByAdmin")
RETRYABLE = frozenset({412, 429, 502, 504})
FOREIGN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

Logic = Callable[[TurnContext], Awaitable[None]]
TokenMaker = Callable[[FakeConnector], str | None]


class EchoBot(ActivityHandler):
    """Answers each message, so a test sees the outbound half of a turn."""

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        """Reply through the connector the adapter built for this turn."""
        await turn_context.send_activity(f"echo: {turn_context.activity.text}")


def guarded_route(adapter: CloudAdapter, bot: ActivityHandler) -> Any:
    """/api/messages as production should write it: botbuilder lets PyJWT errors out as 500."""

    async def messages(request: web.Request) -> web.StreamResponse:
        try:
            return await adapter.process(request, bot)
        except jwt.InvalidTokenError as error:
            raise web.HTTPUnauthorized() from error

    return messages


def raw_route(adapter: CloudAdapter, bot: ActivityHandler) -> Any:
    """adapter.process alone, as the botbuilder samples write it."""

    async def messages(request: web.Request) -> web.StreamResponse:
        return await adapter.process(request, bot)

    return messages


@asynccontextmanager
async def serving(adapter: CloudAdapter, bot: ActivityHandler) -> AsyncIterator[str]:
    """The bot on a free loopback port, with both routes; yields its base URL."""
    app = web.Application()
    app.router.add_post("/api/messages", guarded_route(adapter, bot))
    app.router.add_post("/raw/messages", raw_route(adapter, bot))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def post(url: str, activity: dict, token: str | None, route: str = "/api/messages") -> int:
    """POST an activity as the channel does; returns the HTTP status."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + route, json=activity, headers=headers) as response,
    ):
        return response.status


def message(service_url: str, *, tenant: str = TENANT, text: str = "hi") -> dict:
    """A Teams personal-chat message as it arrives at /api/messages."""
    return {
        "type": "message",
        "id": f"1:{time.monotonic_ns()}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": ADA["id"], "name": ADA["name"], "aadObjectId": ADA["aadObjectId"]},
        "recipient": {"id": f"28:{APP_ID}", "name": "NIS2 Coach"},
        "conversation": {"id": CHAT, "conversationType": "personal", "tenantId": tenant},
        "channelData": {"tenant": {"id": tenant}},
        "text": text,
    }


def stored_reference(service_url: str, conversation_id: str = CHAT) -> ConversationReference:
    """A reference as the bot saved it to its database, read back after a restart."""
    stored = {
        "activityId": "1:earlier-message",
        "user": {"id": ADA["id"], "name": ADA["name"], "aadObjectId": ADA["aadObjectId"]},
        "bot": {"id": f"28:{APP_ID}", "name": "NIS2 Coach"},
        "conversation": {"id": conversation_id, "conversationType": "personal", "tenantId": TENANT},
        "channelId": "msteams",
        "serviceUrl": service_url,
    }
    return ConversationReference().deserialize(stored)


def say(*texts: str) -> Logic:
    """A proactive turn that sends each text in order."""

    async def logic(turn_context: TurnContext) -> None:
        for text in texts:
            await turn_context.send_activity(text)

    return logic


def classify(error: ErrorResponseException) -> tuple[str, str]:
    """How the bot sorts connector failures: status on .response, Teams' code on .error.error."""
    status = error.response.status_code
    code = error.error.error.code if error.error and error.error.error else ""
    if status == 403 and code in UNREACHABLE:
        return "unreachable", code
    if status in RETRYABLE:
        return "retry", code
    return "fail", code


def connector_calls(fake: FakeConnector) -> list[tuple[str, str, int]]:
    """Connector requests only (no token or metadata fetches), as (method, operation, status)."""
    return [
        (call.method, call.operation or "", call.status) for call in fake.calls if call.operation
    ]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail at once, rather than hang, if anything reaches for a Microsoft host."""
    resolve = socket.getaddrinfo

    def loopback(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"this test may only use 127.0.0.1, not {host}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback)


@pytest.fixture
async def fake() -> AsyncIterator[FakeConnector]:
    """A started fake, stopped (and botbuilder's metadata URL restored) after the test."""
    connector = FakeConnector()
    await connector.start()
    yield connector
    await connector.stop()


@pytest.fixture
def adapter(fake: FakeConnector) -> CloudAdapter:
    """The production adapter for a MultiTenant app."""
    return adapter_for(fake, app_id=APP_ID, password=PASSWORD)


async def test_multi_tenant_message_is_answered_with_a_bearer_token(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    inbound = message(fake.url)
    async with serving(adapter, EchoBot()) as url:
        status = await post(url, inbound, fake.channel_token(APP_ID, fake.url))

    assert status == 201  # CloudAdapter answers 201, not 200, to anything but invoke
    [sent] = fake.sends
    assert sent["activity"]["text"] == "echo: hi"
    assert sent["reply_to_id"] == inbound["id"]
    assert sent["app_id"] == APP_ID
    claims = jwt.decode(sent["token"], options={"verify_signature": False})
    assert (claims["appid"], claims["aud"]) == (APP_ID, "https://api.botframework.com")
    assert fake.token_requests == [
        {
            "tenant": MULTI_TENANT_AUTHORITY,
            "client_id": APP_ID,
            "scope": CONNECTOR_SCOPE,
            "status": 200,
        }
    ]


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda fake: None, id="no-authorization-header"),
        pytest.param(lambda fake: fake.channel_token(OTHER_APP_ID, fake.url), id="other-app-aud"),
        pytest.param(
            lambda fake: fake.channel_token(APP_ID, fake.regional_url()), id="other-serviceurl"
        ),
    ],
)
async def test_inbound_tokens_botbuilder_refuses(
    fake: FakeConnector, adapter: CloudAdapter, make_token: TokenMaker
) -> None:
    async with serving(adapter, EchoBot()) as url:
        status = await post(url, message(fake.url), make_token(fake))

    assert status == 401
    assert fake.sends == []


@pytest.mark.parametrize(
    ("make_token", "activity_tenant", "expected"),
    [
        pytest.param(
            lambda fake: fake.channel_token(APP_ID, fake.url), TENANT, 201, id="bot-framework"
        ),
        # botbuilder-python 4.17 accepts only iss https://api.botframework.com on channel
        # tokens; Entra-issued ones fail even from the app's own tenant (botbuilder-python #2233).
        pytest.param(
            lambda fake: fake.channel_token(APP_ID, fake.url, tenant_id=TENANT),
            TENANT,
            401,
            id="entra-v1-own-tenant",
        ),
        pytest.param(
            lambda fake: fake.channel_token(
                APP_ID, fake.url, tenant_id=TENANT, issuer=aad_issuer_v2(TENANT)
            ),
            TENANT,
            401,
            id="entra-v2-own-tenant",
        ),
        pytest.param(
            lambda fake: fake.channel_token(APP_ID, fake.url, tenant_id=OTHER_TENANT),
            TENANT,
            401,
            id="entra-v1-other-tenant",
        ),
        pytest.param(
            lambda fake: fake.channel_token(APP_ID, fake.url, expired_seconds_ago=360),
            TENANT,
            401,
            id="expired-six-minutes-ago",
        ),
        # Nothing in botbuilder compares the activity's tenant with APP_TENANTID: the bot must.
        pytest.param(
            lambda fake: fake.channel_token(APP_ID, fake.url),
            OTHER_TENANT,
            201,
            id="bot-framework-activity-from-other-tenant",
        ),
    ],
)
async def test_single_tenant_app_c13(
    fake: FakeConnector, make_token: TokenMaker, activity_tenant: str, expected: int
) -> None:
    adapter = adapter_for(
        fake, app_id=APP_ID, password=PASSWORD, app_type="SingleTenant", tenant_id=TENANT
    )
    async with serving(adapter, EchoBot()) as url:
        status = await post(url, message(fake.url, tenant=activity_tenant), make_token(fake))

    assert status == expected
    if expected == 201:
        assert [request["tenant"] for request in fake.token_requests] == [TENANT]
        assert len(fake.sends) == 1
    else:
        assert fake.sends == []


async def test_raw_route_answers_500_to_an_expired_token(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    token = fake.channel_token(APP_ID, fake.url, expired_seconds_ago=360)
    async with serving(adapter, EchoBot()) as url:
        assert await post(url, message(fake.url), token, route="/raw/messages") == 500
        assert await post(url, message(fake.url), token) == 401


def foreign_token(fake: FakeConnector, kid: str | None = None, algorithm: str = "RS256") -> str:
    """Valid claims signed with a key the fake never published."""
    claims = jwt.decode(fake.channel_token(APP_ID, fake.url), options={"verify_signature": False})
    kid = kid or jwt.get_unverified_header(fake.channel_token(APP_ID, fake.url))["kid"]
    key: Any = "k" * 40 if algorithm == "HS256" else FOREIGN_KEY
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


@pytest.mark.parametrize(
    ("make_token", "escapes_as"),
    [
        pytest.param(lambda fake: "not-a-jwt", jwt.DecodeError, id="malformed"),
        pytest.param(
            lambda fake: fake.channel_token(APP_ID, fake.url, expired_seconds_ago=360),
            jwt.ExpiredSignatureError,
            id="expired",
        ),
        pytest.param(foreign_token, jwt.InvalidSignatureError, id="foreign-signature"),
        # The key lookup indexes [0] before its "refresh when the kid is unknown" branch.
        pytest.param(lambda fake: foreign_token(fake, kid="rotated"), IndexError, id="unknown-kid"),
        pytest.param(lambda fake: foreign_token(fake, algorithm="HS256"), Exception, id="hs256"),
    ],
)
async def test_token_errors_that_are_not_permission_errors(
    fake: FakeConnector, adapter: CloudAdapter, make_token: TokenMaker, escapes_as: type
) -> None:
    inbound = Activity().deserialize(message(fake.url))
    with pytest.raises(escapes_as) as caught:
        await adapter.process_activity(f"Bearer {make_token(fake)}", inbound, EchoBot().on_turn)
    assert not isinstance(caught.value, PermissionError)  # so CloudAdapter.process gives 500


async def test_proactive_send_after_restart_reaches_regional_url_c12(fake: FakeConnector) -> None:
    restarted = adapter_for(fake, app_id=APP_ID, password=PASSWORD)
    reference = stored_reference(fake.regional_url("emea"))

    await restarted.continue_conversation(reference, say("Lesson 2: phishing"), APP_ID)

    [sent] = fake.sends
    assert (sent["region"], sent["conversation_id"]) == ("emea", CHAT)
    assert sent["activity"]["text"] == "Lesson 2: phishing"
    assert jwt.decode(sent["token"], options={"verify_signature": False})["appid"] == APP_ID
    # CloudAdapter sends proactive messages as replies to the continuation's random id.
    assert sent["reply_to_id"] and fake.calls[-1].path.startswith(f"/emea/v3/conversations/{CHAT}")
    assert not any("openidconfiguration" in call.path for call in fake.calls)


async def test_every_turn_fetches_a_new_token(fake: FakeConnector, adapter: CloudAdapter) -> None:
    reference = stored_reference(fake.url)
    await adapter.continue_conversation(reference, say("one", "two", "three"), APP_ID)
    await adapter.continue_conversation(reference, say("four"), APP_ID)

    # botbuilder builds new credentials (in production a new MSAL app and cache) per turn.
    assert len(fake.token_requests) == 2
    assert len({sent["token"] for sent in fake.sends}) == 2


async def test_continue_conversation_needs_the_bot_app_id(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    with pytest.raises(Exception, match="Invalid app_id"):
        await adapter.continue_conversation(stored_reference(fake.url), say("hi"))
    assert fake.calls == []


async def test_create_conversation_carries_tenant_and_is_not_group_c14(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    fake.add_team(TEAM, TENANT, [ADA, GRACE])
    parameters = ConversationParameters(
        is_group=False,
        bot=ChannelAccount(id=f"28:{APP_ID}"),
        members=[ChannelAccount(id=GRACE["id"])],
        tenant_id=TENANT,
        channel_data={"tenant": {"id": TENANT}},
    )
    references: list[ConversationReference] = []

    async def welcome(turn_context: TurnContext) -> None:
        references.append(TurnContext.get_conversation_reference(turn_context.activity))
        await turn_context.send_activity("Welcome to the NIS2 course")

    await adapter.create_conversation(APP_ID, welcome, parameters, "msteams", fake.url)

    [body] = fake.created
    # botbuilder-python spells it "tenantID"; the fake, like .NET, ignores the case.
    assert (body["tenantID"], body["isGroup"]) == (TENANT, False)
    assert body["channelData"] == {"tenant": {"id": TENANT}}
    assert body["members"] == [{"id": GRACE["id"]}]
    [reference] = references
    assert reference.conversation.id.startswith("a:")
    assert fake.sends[0]["conversation_id"] == reference.conversation.id


async def test_create_conversation_without_tenant_is_a_400(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    parameters = ConversationParameters(
        is_group=False,
        bot=ChannelAccount(id=f"28:{APP_ID}"),
        members=[ChannelAccount(id=GRACE["id"])],
    )
    with pytest.raises(ErrorResponseException) as caught:
        await adapter.create_conversation(APP_ID, say("x"), parameters, "msteams", fake.url)

    assert caught.value.response.status_code == 400
    assert caught.value.error.error.code == "BadSyntax"
    assert fake.created == []


async def test_update_activity_puts_to_the_original_id_c18(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    async def ask_then_answer(turn_context: TurnContext) -> None:
        question = await turn_context.send_activity("Question 1 (card)")
        feedback = MessageFactory.text("Correct: report it to the security team")
        feedback.id = question.id
        await turn_context.update_activity(feedback)

    await adapter.continue_conversation(stored_reference(fake.url), ask_then_answer, APP_ID)

    [sent] = fake.sends
    [update] = fake.updates
    assert update["activity_id"] == sent["activity_id"]
    assert update["activity"]["text"].startswith("Correct")
    assert connector_calls(fake) == [("POST", "send", 201), ("PUT", "update", 200)]


async def test_update_of_unknown_activity_is_a_404(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    async def update_unknown(turn_context: TurnContext) -> None:
        stale = MessageFactory.text("too late")
        stale.id = "1700000000999"
        await turn_context.update_activity(stale)

    with pytest.raises(ErrorResponseException) as caught:
        await adapter.continue_conversation(stored_reference(fake.url), update_unknown, APP_ID)
    assert caught.value.response.status_code == 404


@pytest.mark.parametrize("code", UNREACHABLE)
async def test_forbidden_send_can_be_classified_c11(
    fake: FakeConnector, adapter: CloudAdapter, code: str
) -> None:
    fake.fail(status=403, code=code, conversation_id=CHAT)

    with pytest.raises(ErrorResponseException) as caught:
        await adapter.continue_conversation(stored_reference(fake.url), say("Lesson"), APP_ID)

    assert classify(caught.value) == ("unreachable", code)
    assert connector_calls(fake) == [("POST", "send", 403)]


async def test_on_turn_error_swallows_proactive_failures(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    seen: list[Exception] = []

    async def on_turn_error(turn_context: TurnContext, error: Exception) -> None:
        seen.append(error)

    adapter.on_turn_error = on_turn_error
    fake.fail(status=403, code="ConversationBlockedByUser")

    await adapter.continue_conversation(stored_reference(fake.url), say("Lesson"), APP_ID)

    [error] = seen
    assert isinstance(error, ErrorResponseException)
    assert classify(error) == ("unreachable", "ConversationBlockedByUser")


async def test_throttled_send_shows_retry_after_c19(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    fake.fail(status=429, retry_after=3)
    started = time.monotonic()

    with pytest.raises(ErrorResponseException) as caught:
        await adapter.continue_conversation(stored_reference(fake.url), say("Lesson"), APP_ID)

    assert time.monotonic() - started < 1  # nothing below the bot waited or retried the POST
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "3"
    assert classify(caught.value) == ("retry", "Throttled")
    assert connector_calls(fake) == [("POST", "send", 429)]


async def test_eighth_send_in_a_second_is_throttled_c19(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    fake.per_conversation_limit = 7
    texts = [f"message {number}" for number in range(8)]

    with pytest.raises(ErrorResponseException) as caught:
        await adapter.continue_conversation(stored_reference(fake.url), say(*texts), APP_ID)

    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "1"
    assert len(fake.sends) == 7


async def test_urllib3_retries_a_502_put_silently_but_not_a_502_post(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    async def ask_then_answer(turn_context: TurnContext) -> None:
        question = await turn_context.send_activity("Question")
        feedback = MessageFactory.text("Feedback")
        feedback.id = question.id
        await turn_context.update_activity(feedback)

    fake.fail(status=502, operation="update")
    await adapter.continue_conversation(stored_reference(fake.url), ask_then_answer, APP_ID)
    assert [status for method, _, status in connector_calls(fake) if method == "PUT"] == [502, 200]

    fake.fail(status=502)
    with pytest.raises(ErrorResponseException) as caught:
        await adapter.continue_conversation(stored_reference(fake.url), say("again"), APP_ID)
    assert caught.value.response.status_code == 502
    assert connector_calls(fake)[-1] == ("POST", "send", 502)


async def test_members_are_paged_and_found_by_aad_object_id(
    fake: FakeConnector, adapter: CloudAdapter
) -> None:
    fake.add_team(TEAM, TENANT, [ADA, GRACE, ALAN])
    fake.page_size = 2
    found: dict[str, Any] = {}

    async def read_roster(turn_context: TurnContext) -> None:
        with pytest.raises(TypeError):  # TeamsInfo needs channel_data; continuations have none
            await TeamsInfo.get_paged_members(turn_context)
        turn_context.activity.channel_data = {"team": {"id": TEAM}, "tenant": {"id": TENANT}}
        first = await TeamsInfo.get_paged_members(turn_context, page_size=50)
        rest = await TeamsInfo.get_paged_members(turn_context, first.continuation_token, 50)
        found["pages"] = [[member.id for member in page.members] for page in (first, rest)]
        found["last_token"] = rest.continuation_token
        found["ada"] = await TeamsInfo.get_member(turn_context, ADA["aadObjectId"])
        found["channels"] = await TeamsInfo.get_team_channels(turn_context)

    await adapter.continue_conversation(stored_reference(fake.url, TEAM), read_roster, APP_ID)

    assert found["pages"] == [[ADA["id"], GRACE["id"]], [ALAN["id"]]]
    assert found["last_token"] is None
    assert (found["ada"].user_principal_name, found["ada"].tenant_id) == (
        ADA["userPrincipalName"],
        TENANT,
    )
    assert [channel.id for channel in found["channels"]] == [TEAM]


async def test_connector_refuses_requests_without_a_token_from_its_endpoint(
    fake: FakeConnector,
) -> None:
    headers = {"Authorization": f"Bearer {fake.channel_token(APP_ID, fake.url)}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.url}v3/conversations/{CHAT}/activities", json={}) as bare:
            assert bare.status == 401
        async with session.post(
            f"{fake.url}v3/conversations/{CHAT}/activities", json={}, headers=headers
        ) as wrong:
            assert wrong.status == 401
            assert await wrong.json() == {
                "message": "Authorization has been denied for this request."
            }


async def test_single_tenant_app_cannot_get_tokens_from_botframework_com(
    fake: FakeConnector,
) -> None:
    adapter = adapter_for(fake, app_id=APP_ID, password=PASSWORD, app_type="MultiTenant")
    fake.register_app(APP_ID, PASSWORD, tenant_id=TENANT)  # Entra app is really single-tenant

    with pytest.raises(PermissionError, match="AADSTS700016"):
        await adapter.continue_conversation(stored_reference(fake.url), say("Lesson"), APP_ID)
    assert [(request["tenant"], request["status"]) for request in fake.token_requests] == [
        (MULTI_TENANT_AUTHORITY, 400)
    ]
    assert fake.sends == []
