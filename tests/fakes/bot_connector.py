"""A local fake of the Bot Framework side of Microsoft Teams, so tests never leave 127.0.0.1.

One loopback port plays three Microsoft services:

- the channel's OpenID metadata and signing keys (``openid_url``), so botbuilder checks the JWT
  that ``channel_token`` puts on each activity a test POSTs to the bot;
- the Entra ID token endpoint, ``{login_url}{tenant}/oauth2/v2.0/token`` (client-credentials
  grant, form-encoded as MSAL sends it), where the bot gets the bearer token for its replies;
- the Bot Connector REST API v3 at ``url`` and at regional prefixes (``regional_url("emea")``).

The server runs on a thread with its own event loop. botbuilder fetches OpenID metadata and
access tokens with blocking ``requests`` calls from inside the bot's event loop; a fake served
by that same loop could never answer them.

Error bodies follow the connector's shape, ``{"error": {"code", "message"}}``. The 403 codes,
``BadSyntax`` and the 401 text are the ones Teams is reported to send; the other default codes
are placeholders, so production code should decide on the status first.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import math
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from botframework.connector.auth import EmulatorValidation
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

HOST = "127.0.0.1"
BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
CONNECTOR_AUDIENCE = "https://api.botframework.com"
CONNECTOR_SCOPE = CONNECTOR_AUDIENCE + "/.default"
MULTI_TENANT_AUTHORITY = "botframework.com"
BOT_FRAMEWORK_TENANT_ID = "d6d49420-f39b-4df7-a1dc-d59a935871db"
ENDORSEMENTS = ("msteams", "webchat", "directline", "emulator")
TOKEN_LIFETIME = 3600
DEFAULT_PAGE_SIZE = 200
OPERATIONS = frozenset({"send", "update", "delete", "create", "members", "any"})
PER_CONVERSATION_OPERATIONS = frozenset({"send", "update"})
DENIED = "Authorization has been denied for this request."
MESSAGES = {
    "BotNotInConversationRoster": "The bot is not part of the conversation roster.",
    "ConversationBlockedByUser": "User blocked the conversation with the bot.",
    "BotDisabledByAdmin": "The bot is disabled by the tenant admin.",
    "MemberNotFoundInConversation": "The member is not part of the conversation.",
    "ConversationNotFound": "The conversation was not found.",
}
DEFAULT_CODES = {
    400: "BadSyntax",
    403: "Forbidden",
    404: "NotFound",
    412: "PreconditionFailed",
    413: "MessageSizeTooBig",
    429: "Throttled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

Json = dict[str, Any]


def aad_issuer_v1(tenant_id: str) -> str:
    """The v1 Entra ID issuer a SingleTenant token from that tenant carries."""
    return f"https://sts.windows.net/{tenant_id}/"


def aad_issuer_v2(tenant_id: str) -> str:
    """The v2 Entra ID issuer a SingleTenant token from that tenant carries."""
    return f"https://login.microsoftonline.com/{tenant_id}/v2.0"


@dataclass
class Call:
    """One request as the fake saw it; status 0 while it is still being answered."""

    method: str
    path: str
    at: float
    status: int = 0
    conversation_id: str | None = None
    app_id: str | None = None
    operation: str | None = None
    region: str | None = None


CALL = web.RequestKey("call", Call)


@dataclass
class _Failure:
    status: int
    code: str
    conversation_id: str | None
    remaining: int
    retry_after: float | None
    operation: str


@dataclass
class _App:
    app_id: str
    password: str
    tenant_id: str | None


class ConnectorError(Exception):
    """An error answer, raised so each handler reads as a straight line."""

    def __init__(self, status: int, body: Json, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.retry_after = retry_after

    def response(self) -> web.Response:
        """Retry-After goes out in whole seconds, rounded up, as HTTP defines it."""
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(0, math.ceil(self.retry_after)))
        return web.json_response(self.body, status=self.status, headers=headers)


def api_error(
    status: int, code: str = "", message: str = "", retry_after: float | None = None
) -> ConnectorError:
    """The connector's error shape, with Teams' wording where it is known."""
    code = code or DEFAULT_CODES.get(status, "ServiceError")
    text = message or MESSAGES.get(code, code)
    return ConnectorError(status, {"error": {"code": code, "message": text}}, retry_after)


def aad_error(status: int, error: str, description: str) -> ConnectorError:
    """The token endpoint's error shape, which MSAL and botbuilder read."""
    return ConnectorError(status, {"error": error, "error_description": description})


def _tenant_of(body: Json) -> str | None:
    """tenantId in any case, as .NET binds it (botbuilder sends "tenantID"), or channelData."""
    for key, value in body.items():
        if key.lower() == "tenantid" and value:
            return str(value)
    channel_data = body.get("channelData")
    tenant = channel_data.get("tenant") if isinstance(channel_data, dict) else None
    return tenant.get("id") if isinstance(tenant, dict) else None


def _continuation(offset: int) -> str:
    """An opaque-looking token that still lets the fake stay stateless."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    """Reverse of _continuation; a token the fake never issued is a 400."""
    if not token:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise api_error(400, "BadSyntax", "Invalid continuation token")


def _matches(member: Json, key: str) -> bool:
    """Teams finds a member by channel id, Entra object id or UPN."""
    return key in (member.get("id"), member.get("aadObjectId"), member.get("userPrincipalName"))


async def _json_body(request: web.Request) -> Json:
    """The connector only takes JSON objects."""
    try:
        body = await request.json()
    except ValueError as error:
        raise api_error(400, "BadSyntax", "The body is not valid JSON") from error
    if not isinstance(body, dict):
        raise api_error(400, "BadSyntax", "The body must be a JSON object")
    return body


class FakeConnector:
    """Bot Framework's side of Teams on 127.0.0.1: channel JWTs, token endpoint, Connector v3."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._instance = secrets.token_hex(6)
        self._kid = secrets.token_hex(10)
        self._lock = threading.Lock()
        self._apps: dict[str, _App] = {}
        self._issued: dict[str, tuple[str, float]] = {}
        self._failures: list[_Failure] = []
        self._team_tenants: dict[str, str] = {}
        self._rosters: dict[str, list[Json]] = {}
        self._activities: dict[str, dict[str, Json]] = {}
        self._personal: dict[tuple[str, str, str], str] = {}
        self._windows: dict[str, deque[float]] = {}
        self._global_window: deque[float] = deque()
        self._ids = itertools.count(1_700_000_000_001)
        self._undo: list[Callable[[], None]] = []
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._startup_error: BaseException | None = None
        self.port = 0
        self.sends: list[Json] = []
        self.updates: list[Json] = []
        self.deletes: list[Json] = []
        self.created: list[Json] = []
        self.token_requests: list[Json] = []
        self.calls: list[Call] = []
        self.per_conversation_limit: float | None = None
        self.global_limit: float | None = None
        self.page_size = DEFAULT_PAGE_SIZE

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The global service URL, like https://smba.trafficmanager.net/teams/."""
        return f"http://{HOST}:{self.port}/"

    def regional_url(self, region: str = "emea") -> str:
        """A regional service URL, like https://smba.trafficmanager.net/emea/ (C12)."""
        return f"{self.url}{region}/"

    @property
    def openid_url(self) -> str:
        """Stands in for https://login.botframework.com/v1/.well-known/openidconfiguration."""
        # botbuilder caches keys per metadata URL for a day: a fresh path per fake keeps a
        # later fake on a reused port from meeting an earlier fake's keys.
        return self.url + f"{self._instance}/v1/.well-known/openidconfiguration"

    @property
    def login_url(self) -> str:
        """Stands in for https://login.microsoftonline.com/ ({tenant}/oauth2/v2.0/token)."""
        return self.url

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on a free loopback port from a thread of its own (see the module docstring)."""
        self._thread = threading.Thread(target=self._serve, name="fake-bot-connector", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, 10)
        if self._startup_error is not None:
            raise RuntimeError("FakeConnector could not start") from self._startup_error
        if not self.port:
            raise RuntimeError("FakeConnector did not start within 10 s")

    async def stop(self) -> None:
        """Stop serving and undo whatever on_stop was given, newest first."""
        while self._undo:
            self._undo.pop()()
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 10)

    def on_stop(self, undo: Callable[[], None]) -> None:
        """Let helpers that patch process-wide state put it back when the fake stops."""
        self._undo.append(undo)

    def _serve(self) -> None:
        """Thread body: open the site, signal start(), serve until stop()."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner = loop.run_until_complete(self._open())
        except Exception as error:  # handed to start(), which raises it in the test
            self._startup_error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _open(self) -> web.AppRunner:
        """Bind port 0 on loopback so parallel fakes never collide."""
        app = web.Application(middlewares=[self._record])
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, 0).start()
        self.port = runner.addresses[0][1]
        return runner

    def _add_routes(self, app: web.Application) -> None:
        """Connector routes are served at the root and under one regional segment."""
        app.router.add_get(f"/{self._instance}/v1/.well-known/openidconfiguration", self._openid)
        app.router.add_get(f"/{self._instance}/v1/.well-known/keys", self._keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        for prefix in ("", "/{region}"):
            conversation = prefix + "/v3/conversations/{conversation}"
            app.router.add_post(prefix + "/v3/conversations", self._create)
            app.router.add_post(conversation + "/activities", self._send)
            app.router.add_post(conversation + "/activities/{activity}", self._send)
            app.router.add_put(conversation + "/activities/{activity}", self._update)
            app.router.add_delete(conversation + "/activities/{activity}", self._delete)
            app.router.add_get(conversation + "/members", self._members)
            app.router.add_get(conversation + "/pagedmembers", self._paged_members)
            app.router.add_get(conversation + "/members/{member}", self._member)
            app.router.add_get(prefix + "/v3/teams/{team}/conversations", self._team_channels)

    # -- test controls -----------------------------------------------------------------------

    def register_app(self, app_id: str, password: str, *, tenant_id: str | None = None) -> None:
        """An Entra app: MultiTenant without tenant_id, SingleTenant (home tenant) with one."""
        with self._lock:
            self._apps[app_id] = _App(app_id, password, tenant_id)

    def channel_token(
        self,
        app_id: str,
        service_url: str,
        *,
        tenant_id: str | None = None,
        issuer: str | None = None,
        expired_seconds_ago: int | None = None,
    ) -> str:
        """The JWT Bot Framework puts on an activity; tenant_id makes it Entra-issued (v1)."""
        if issuer is None:
            issuer = aad_issuer_v1(tenant_id) if tenant_id else BOT_FRAMEWORK_ISSUER
        if issuer in EmulatorValidation.TO_BOT_FROM_EMULATOR_TOKEN_VALIDATION_PARAMETERS.issuer:
            raise ValueError(
                "botbuilder would fetch login.microsoftonline.com keys for this issuer"
            )
        now = int(time.time())
        expires = now + TOKEN_LIFETIME if expired_seconds_ago is None else now - expired_seconds_ago
        claims: Json = {
            "iss": issuer,
            "aud": app_id,
            "serviceurl": service_url,
            "nbf": expires - TOKEN_LIFETIME,
            "exp": expires,
        }
        if tenant_id:
            claims["tid"] = tenant_id
        return self._sign(claims)

    def add_team(self, team_id: str, tenant_id: str, members: list[Json]) -> None:
        """A team with the bot installed; its id is also its General channel's conversation id."""
        roster = [{"tenantId": tenant_id, **member} for member in members]
        with self._lock:
            self._team_tenants[team_id] = tenant_id
            self._rosters[team_id] = roster

    def fail(
        self,
        *,
        status: int,
        code: str = "",
        conversation_id: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
        operation: str = "send",
    ) -> None:
        """The next `times` matching requests get this error, before any other check but the token.

        operation: "send" (POST activities, replies included), "update" (PUT), "delete",
        "create" (POST /v3/conversations), "members" (member and channel GETs) or "any".
        """
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {sorted(OPERATIONS)}")
        failure = _Failure(status, code, conversation_id, times, retry_after, operation)
        with self._lock:
            self._failures.append(failure)

    def expire_access_tokens(self) -> None:
        """Make every token issued so far invalid, as if an hour had passed."""
        with self._lock:
            self._issued = {token: (app, 0.0) for token, (app, _) in self._issued.items()}

    # -- signing and auth --------------------------------------------------------------------

    def _sign(self, claims: Json) -> str:
        """RS256 with the key the JWKS publishes, as Bot Framework and Entra ID sign."""
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    def _authorize(self, request: web.Request) -> str:
        """A bearer token from our token endpoint, still valid; else the connector's 401."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            grant = self._issued.get(token) if scheme == "Bearer" else None
        if grant is None or grant[1] <= time.time():
            raise ConnectorError(401, {"message": DENIED})
        return grant[0]

    def _admit(self, request: web.Request, operation: str, conversation_id: str | None) -> str:
        """Token first, then injected failures, then rate limits; returns the caller's app id."""
        call = request[CALL]
        call.operation = operation
        call.conversation_id = conversation_id
        call.app_id = self._authorize(request)
        with self._lock:
            failure = self._take_failure(operation, conversation_id)
            if failure is not None:
                raise api_error(failure.status, failure.code, retry_after=failure.retry_after)
            self._throttle(operation, conversation_id)
        return call.app_id

    def _take_failure(self, operation: str, conversation_id: str | None) -> _Failure | None:
        """Use up one matching injected failure, so `times` counts requests as they arrive."""
        for failure in self._failures:
            if failure.operation not in ("any", operation):
                continue
            if failure.conversation_id not in (None, conversation_id):
                continue
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failures.remove(failure)
            return failure
        return None

    def _throttle(self, operation: str, conversation_id: str | None) -> None:
        """One-second sliding windows: all requests, and sends/updates per conversation (C19)."""
        now = time.monotonic()
        windows = [(self._global_window, self.global_limit)]
        if operation in PER_CONVERSATION_OPERATIONS and conversation_id:
            window = self._windows.setdefault(conversation_id, deque())
            windows.append((window, self.per_conversation_limit))
        for window, limit in windows:
            while window and window[0] <= now - 1:
                window.popleft()
            if limit is not None and len(window) >= limit:
                raise api_error(429, "Throttled", retry_after=window[0] + 1 - now)
        for window, _ in windows:
            window.append(now)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Log every request with its final status, and turn ConnectorError into a reply."""
        call = Call(request.method, request.path, time.monotonic())
        call.region = request.match_info.get("region")
        request[CALL] = call
        self.calls.append(call)
        try:
            response = await handler(request)
        except ConnectorError as error:
            response = error.response()
        except web.HTTPException as error:
            call.status = error.status
            raise
        call.status = response.status
        return response

    # -- OpenID metadata and token endpoint --------------------------------------------------

    async def _openid(self, request: web.Request) -> web.Response:
        """The document botbuilder reads jwks_uri from."""
        return web.json_response(
            {
                "issuer": BOT_FRAMEWORK_ISSUER,
                "authorization_endpoint": self.url + "v1/.well-known/authorize",
                "jwks_uri": self.url + f"{self._instance}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        """The signing key, endorsed for the channels, as botbuilder checks endorsements."""
        key = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        key.update(kid=self._kid, use="sig", endorsements=list(ENDORSEMENTS))
        return web.json_response({"keys": [key]})

    async def _token(self, request: web.Request) -> web.Response:
        """Client-credentials grant, checked the way Entra ID checks a bot's app registration."""
        tenant = request.match_info["tenant"]
        form = {key: str(value) for key, value in (await request.post()).items()}
        entry = {"tenant": tenant, "client_id": form.get("client_id"), "scope": form.get("scope")}
        self.token_requests.append(entry)
        try:
            token = self._grant(tenant, form)
        except ConnectorError as error:
            entry["status"] = error.status
            raise
        entry["status"] = 200
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME - 1,
                "ext_expires_in": TOKEN_LIFETIME - 1,
                "access_token": token,
            }
        )

    def _grant(self, tenant: str, form: dict[str, str]) -> str:
        """A SingleTenant app exists in its home tenant only; MultiTenant in botframework.com."""
        if form.get("grant_type") != "client_credentials":
            raise aad_error(400, "unsupported_grant_type", "AADSTS70003: grant type not supported.")
        client_id = form.get("client_id", "")
        with self._lock:
            app = self._apps.get(client_id)
        home = (app.tenant_id or MULTI_TENANT_AUTHORITY) if app else None
        if app is None or tenant != home:
            raise aad_error(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                f"directory '{tenant}'.",
            )
        if form.get("client_secret") != app.password:
            raise aad_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("scope") != CONNECTOR_SCOPE:
            raise aad_error(400, "invalid_scope", "AADSTS70011: The provided scope is not valid.")
        return self._issue(client_id, tenant)

    def _issue(self, app_id: str, tenant: str) -> str:
        """An access token for the connector, remembered so the connector can check it."""
        tenant_id = BOT_FRAMEWORK_TENANT_ID if tenant == MULTI_TENANT_AUTHORITY else tenant
        now = int(time.time())
        token = self._sign(
            {
                "aud": CONNECTOR_AUDIENCE,
                "iss": aad_issuer_v1(tenant_id),
                "appid": app_id,
                "tid": tenant_id,
                "ver": "1.0",
                "iat": now,
                "nbf": now,
                "exp": now + TOKEN_LIFETIME,
                "jti": uuid.uuid4().hex,
            }
        )
        with self._lock:
            self._issued[token] = (app_id, now + TOKEN_LIFETIME)
        return token

    # -- Connector v3 ------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        """A 1:1 chat: Teams needs the tenant (C14) and refuses group chats."""
        app_id = self._admit(request, "create", None)
        body = await _json_body(request)
        tenant = _tenant_of(body)
        if not tenant:
            raise api_error(400, "BadSyntax", "Could not parse tenant id")
        members = body.get("members") or []
        if body.get("isGroup") or len(members) != 1 or not isinstance(members[0], dict):
            raise api_error(400, "BadSyntax", "Incorrect conversation creation parameters")
        member = self._reachable(tenant, members[0])
        with self._lock:
            key = (app_id, tenant, member["id"])
            conversation_id = self._personal.setdefault(key, "a:" + secrets.token_urlsafe(24))
            self._rosters[conversation_id] = [member]
            self.created.append(body)
        request[CALL].conversation_id = conversation_id
        answer: Json = {"id": conversation_id}
        if isinstance(body.get("activity"), dict):
            answer["activityId"] = self._store(request, conversation_id, body["activity"], None)
        return web.json_response(answer, status=201)

    def _reachable(self, tenant: str, requested: Json) -> Json:
        """Where the tenant has teams, only their members can get a 1:1 with the bot."""
        with self._lock:
            rosters = [
                self._rosters[team] for team, owner in self._team_tenants.items() if owner == tenant
            ]
        if not rosters:
            return {"tenantId": tenant, **requested}
        key = requested.get("id", "")
        for roster in rosters:
            for member in roster:
                if _matches(member, key):
                    return member
        raise api_error(403, "BotNotInConversationRoster")

    async def _send(self, request: web.Request) -> web.Response:
        """A new message, or a reply when the path names an activity (the id needn't exist)."""
        conversation_id = request.match_info["conversation"]
        self._admit(request, "send", conversation_id)
        activity = await _json_body(request)
        reply_to = request.match_info.get("activity")
        activity_id = self._store(request, conversation_id, activity, reply_to)
        return web.json_response({"id": activity_id}, status=201)

    def _store(
        self, request: web.Request, conversation_id: str, activity: Json, reply_to: str | None
    ) -> str:
        """Keep the activity under a fresh id so a later PUT can find it."""
        call = request[CALL]
        token = request.headers.get("Authorization", "").partition(" ")[2]
        with self._lock:
            activity_id = str(next(self._ids))
            self._activities.setdefault(conversation_id, {})[activity_id] = activity
            self.sends.append(
                {
                    "conversation_id": conversation_id,
                    "activity_id": activity_id,
                    "activity": activity,
                    "reply_to_id": reply_to,
                    "token": token,
                    "app_id": call.app_id,
                    "region": call.region,
                }
            )
        return activity_id

    async def _update(self, request: web.Request) -> web.Response:
        """Replace a sent activity in place (C18); an id the fake never gave out is a 404."""
        conversation_id = request.match_info["conversation"]
        activity_id = request.match_info["activity"]
        self._admit(request, "update", conversation_id)
        activity = await _json_body(request)
        with self._lock:
            known = self._activities.get(conversation_id, {})
            if activity_id not in known:
                raise api_error(404, "NotFound", f"Activity {activity_id} not found")
            known[activity_id] = activity
            self.updates.append(
                {
                    "conversation_id": conversation_id,
                    "activity_id": activity_id,
                    "activity": activity,
                }
            )
        return web.json_response({"id": activity_id})

    async def _delete(self, request: web.Request) -> web.Response:
        """Remove a sent activity; unknown ids are a 404 as for updates."""
        conversation_id = request.match_info["conversation"]
        activity_id = request.match_info["activity"]
        self._admit(request, "delete", conversation_id)
        with self._lock:
            known = self._activities.get(conversation_id, {})
            if known.pop(activity_id, None) is None:
                raise api_error(404, "NotFound", f"Activity {activity_id} not found")
            self.deletes.append({"conversation_id": conversation_id, "activity_id": activity_id})
        return web.Response(status=200)

    def _roster(self, conversation_id: str) -> list[Json]:
        """Members of a team's channel or of a 1:1 the fake created."""
        with self._lock:
            roster = self._rosters.get(conversation_id)
        if roster is None:
            raise api_error(404, "ConversationNotFound")
        return roster

    async def _members(self, request: web.Request) -> web.Response:
        """The old unpaged list; Teams limits it hard, so production should page instead."""
        conversation_id = request.match_info["conversation"]
        self._admit(request, "members", conversation_id)
        return web.json_response(self._roster(conversation_id))

    async def _paged_members(self, request: web.Request) -> web.Response:
        """At most page_size members per page, whatever pageSize asks for."""
        conversation_id = request.match_info["conversation"]
        self._admit(request, "members", conversation_id)
        roster = self._roster(conversation_id)
        asked = request.query.get("pageSize", "")
        size = max(1, min(int(asked) if asked.isdigit() else self.page_size, self.page_size))
        start = _offset(request.query.get("continuationToken"))
        answer: Json = {"members": roster[start : start + size]}
        if start + size < len(roster):
            answer["continuationToken"] = _continuation(start + size)
        return web.json_response(answer)

    async def _member(self, request: web.Request) -> web.Response:
        """One member by channel id, Entra object id or UPN."""
        conversation_id = request.match_info["conversation"]
        self._admit(request, "members", conversation_id)
        key = request.match_info["member"]
        for member in self._roster(conversation_id):
            if _matches(member, key):
                return web.json_response(member)
        raise api_error(404, "MemberNotFoundInConversation")

    async def _team_channels(self, request: web.Request) -> web.Response:
        """Only the General channel, whose id is the team id."""
        team_id = request.match_info["team"]
        self._admit(request, "members", team_id)
        with self._lock:
            known = team_id in self._team_tenants
        if not known:
            raise api_error(404, "NotFound", f"Team {team_id} not found")
        return web.json_response({"conversations": [{"id": team_id, "name": None}]})
