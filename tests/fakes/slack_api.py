"""A local fake of the Slack Web API and Socket Mode, so tests never leave 127.0.0.1.

The real ``slack_sdk`` clients talk to it unchanged: point ``AsyncWebClient(base_url=...)``
at ``FakeSlack.api_url``. Like the real workspace, every workspace already holds its bot
user (``is_bot`` true) and Slackbot (``USLACKBOT``, ``is_bot`` false).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import BodyPartReader, WSCloseCode, WSMessage, WSMsgType, web

HOST = "127.0.0.1"
JSON_FIELDS = frozenset({"blocks", "attachments", "view", "metadata", "files"})
TEXT_LIMITS = {"section": 3000, "header": 150}
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MODAL_TITLE = 24
MAX_PAGE = 1000
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
DEFAULT_SCOPES = (
    "chat:write,commands,im:write,users:read,channels:read,groups:read,usergroups:read,files:write"
)

Params = dict[str, Any]


@dataclass
class Call:
    """One Web API call as the fake saw it; status 0 while it is still being answered."""

    method: str
    team_id: str | None
    params: Params
    at: float
    status: int = 0
    ok: bool = False
    error: str | None = None
    done: float | None = None


class SlackError(Exception):
    """An answer other than ok, raised so each handler reads as a straight line."""

    def __init__(
        self, error: str, *, status: int = 200, retry_after: int | None = None, detail: str = ""
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self.body: Params = {"ok": False, "error": error}
        if detail:
            self.body["response_metadata"] = {"messages": [f"[ERROR] {detail}"]}


@dataclass
class _User:
    id: str
    name: str
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False
    deleted: bool = False
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    tz: str = "Europe/Copenhagen"
    locale: str = "en-US"


@dataclass
class _Channel:
    id: str
    name: str
    members: list[str]
    user: str | None = None
    opened: bool = False
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class _Workspace:
    team_id: str
    name: str
    bot_user_id: str
    users: dict[str, _User] = field(default_factory=dict)
    channels: dict[str, _Channel] = field(default_factory=dict)
    dms: dict[str, _Channel] = field(default_factory=dict)
    usergroups: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    posted: dict[tuple[str, str], Params] = field(default_factory=dict)
    homes: dict[str, str] = field(default_factory=dict)

    @property
    def bot_id(self) -> str:
        """Slack gives the bot user a separate bot id; derive a stable one."""
        return "B" + self.team_id.removeprefix("T")


@dataclass
class _Rule:
    method: str
    team_id: str | None
    remaining: int
    error: str
    retry_after: int = 0


@dataclass
class _Upload:
    file_id: str
    team_id: str
    filename: str
    length: int
    content: bytes | None = None


def _take(rules: list[_Rule], method: str, team_id: str | None) -> _Rule | None:
    """Use up one matching rule, so `times` counts calls as they arrive."""
    for rule in rules:
        if rule.method == method and rule.team_id in (None, team_id):
            rule.remaining -= 1
            if rule.remaining <= 0:
                rules.remove(rule)
            return rule
    return None


def _flag(value: Any) -> bool:
    """Slack booleans arrive as true, "true" or "1" depending on the encoding."""
    return value is True or str(value).lower() in ("1", "true")


def _int(value: Any, default: int) -> int:
    """Numbers arrive as strings in forms and query strings."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _decode(key: str, value: Any) -> Any:
    """Form fields carry JSON as strings; handlers want the lists and dicts."""
    if key not in JSON_FIELDS or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_params(request: web.Request) -> Params:
    """Merge the query string and the body, since slack_sdk uses every encoding."""
    params: Params = dict(request.query)
    if request.content_type == "application/json" and request.can_read_body:
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif request.method == "POST":
        form = await request.post()
        for key, value in form.items():
            params[key] = value.file.read() if isinstance(value, web.FileField) else value
    return {key: _decode(key, value) for key, value in params.items()}


def _bearer(request: web.Request) -> str | None:
    """The token slack_sdk puts in the Authorization header."""
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


def _add_basic_auth(request: web.Request, params: Params) -> None:
    """oauth.v2.access sends client credentials as HTTP Basic auth."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return
    params.setdefault("client_id", client_id)
    params.setdefault("client_secret", secret)


async def _upload_bytes(request: web.Request) -> bytes:
    """The upload URL receives raw bytes from slack_sdk, multipart from other clients."""
    if not request.content_type.startswith("multipart/"):
        return await request.read()
    reader = await request.multipart()
    part = await reader.next()
    return bytes(await part.read()) if isinstance(part, BodyPartReader) else b""


def _encode_cursor(offset: int) -> str:
    """Slack cursors are opaque base64 strings."""
    return base64.b64encode(f"fake:{offset}".encode()).decode()


def _decode_cursor(cursor: Any) -> int:
    """Turn a cursor back into an offset, refusing anything the fake did not issue."""
    if not cursor:
        return 0
    try:
        prefix, _, offset = base64.b64decode(str(cursor)).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise SlackError("invalid_cursor") from error
    if prefix != "fake" or not offset.isdigit():
        raise SlackError("invalid_cursor")
    return int(offset)


def _page(items: list[Any], params: Params, default_limit: int) -> tuple[list[Any], str]:
    """Cut one page and the cursor of the next, "" on the last page, as Slack does."""
    start = _decode_cursor(params.get("cursor"))
    limit = min(_int(params.get("limit"), 0) or default_limit or len(items), MAX_PAGE)
    end = start + max(limit, 1)
    return items[start:end], _encode_cursor(end) if end < len(items) else ""


def _tz_offset(tz: str) -> int:
    """Seconds east of UTC right now, as Slack reports tz_offset."""
    try:
        offset = datetime.now(UTC).astimezone(ZoneInfo(tz)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(offset.total_seconds()) if offset else 0


def _handle(name: str) -> str:
    """A username like Slack's from a display name ("Ada Lovelace" -> "ada.lovelace")."""
    return re.sub(r"[^a-z0-9]+", ".", name.lower()).strip(".") or "user"


def _user_object(team_id: str, user: _User, include_locale: bool) -> Params:
    """The user object of users.info and users.list."""
    profile = {"real_name": user.name, "display_name": user.name, "team": team_id}
    profile |= {"real_name_normalized": user.name, "display_name_normalized": user.name}
    obj: Params = {"id": user.id, "team_id": team_id, "name": _handle(user.name)}
    obj |= {"deleted": user.deleted, "real_name": user.name, "profile": profile}
    obj |= {"tz": user.tz, "tz_offset": _tz_offset(user.tz), "is_app_user": False}
    obj |= {"is_admin": user.is_admin, "is_owner": user.is_owner, "is_bot": user.is_bot}
    obj |= {"is_primary_owner": False, "is_restricted": user.is_restricted}
    obj |= {"is_ultra_restricted": user.is_ultra_restricted, "updated": 1700000000}
    if include_locale:
        obj["locale"] = user.locale
    return obj


def _channel_object(channel: _Channel, bot_user_id: str, with_count: bool) -> Params:
    """The channel object of conversations.info, an im for DMs."""
    if channel.user is not None:
        return {"id": channel.id, "created": channel.created, "is_im": True, "user": channel.user}
    obj: Params = {"id": channel.id, "name": channel.name, "name_normalized": channel.name}
    obj |= {"is_channel": True, "is_group": False, "is_im": False, "is_mpim": False}
    obj |= {"is_private": False, "is_archived": False, "created": channel.created}
    obj["is_member"] = bot_user_id in channel.members
    if with_count:
        obj["num_members"] = len(channel.members)
    return obj


def _check_blocks(blocks: Any, limit: int, error: str) -> None:
    """Refuse the Block Kit mistakes bots make most: too many blocks, too much text."""
    if blocks is None:
        return
    if not isinstance(blocks, list) or len(blocks) > limit:
        raise SlackError(error, detail=f"blocks must be a list of at most {limit}")
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise SlackError(error, detail="every block needs a type")
        text = block.get("text")
        most = TEXT_LIMITS.get(block["type"])
        if most and isinstance(text, dict) and len(str(text.get("text", ""))) > most:
            raise SlackError(error, detail=f"{block['type']} text is over {most} characters")


def _check_view(view: Any, kind: str) -> None:
    """Refuse views Slack refuses: wrong type, too many blocks, missing or long title."""
    if not isinstance(view, dict) or view.get("type") != kind:
        raise SlackError("invalid_arguments", detail=f"view must be a {kind} view")
    _check_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS, "invalid_arguments")
    title = view.get("title")
    if kind == "modal" and not (
        isinstance(title, dict) and 0 < len(str(title.get("text", ""))) <= MAX_MODAL_TITLE
    ):
        raise SlackError("invalid_arguments", detail="a modal needs a title of 1-24 characters")


def _check_content(params: Params) -> None:
    """chat.postMessage and friends need something to show."""
    if not any(params.get(key) for key in ("text", "blocks", "attachments")):
        raise SlackError("no_text")
    _check_blocks(params.get("blocks"), MAX_MESSAGE_BLOCKS, "invalid_blocks")


def _new_hash() -> str:
    """View hashes look like "1700000000.1a2b3c4d"."""
    return f"{int(time.time())}.{uuid.uuid4().hex[:8]}"


class FakeSlack:
    """The Slack Web API on 127.0.0.1, recording every call for the test to inspect."""

    def __init__(self) -> None:
        self.delays: dict[str, float] = {}
        self.latency = 0.0
        self.calls: list[Call] = []
        self.messages: list[Params] = []
        self.updates: list[Params] = []
        self.views: list[Params] = []
        self.files: list[Params] = []
        self.responses: list[Params] = []
        self.app_id = "AFAKEAPP1"
        self.scopes = DEFAULT_SCOPES
        self.oauth_client: tuple[str, str] | None = None
        self.port = 0
        self.api_url = ""
        self._teams: dict[str, _Workspace] = {}
        self._tokens: dict[str, str] = {}
        self._app_tokens: set[str] = set()
        self._oauth_codes: dict[str, tuple[str, str]] = {}
        self._limits: list[_Rule] = []
        self.clock: Callable[[], float] | None = None
        self._last_micros = 0
        self.per_second: int | None = None
        self.burst: int | None = None  # per-token limit, as Slack's tiers enforce
        self._buckets: dict[str, tuple[float, float]] = {}
        self._failures: list[_Rule] = []
        self._uploads: dict[str, _Upload] = {}
        self._view_store: dict[str, Params] = {}
        self._external_views: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._socket_mode: FakeSocketMode | None = None
        self._bot_methods = self._bot_method_table()
        self._open_methods: dict[str, Callable[[Params], Params]] = {
            "apps.connections.open": self._apps_connections_open,
            "oauth.v2.access": self._oauth_v2_access,
        }

    def _bot_method_table(self) -> dict[str, Callable[[_Workspace, Params], Params]]:
        """The methods a bot token may call."""
        return {
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "conversations.members": self._conversations_members,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "usergroups.users.list": self._usergroups_users_list,
            "chat.postMessage": self._chat_post_message,
            "conversations.history": self._conversations_history,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    # ---- lifecycle

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 only."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/response/{hook}", self._response_url)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = self._runner.addresses[0][1]
        self.api_url = f"http://{HOST}:{self.port}/api/"

    async def stop(self) -> None:
        """Close open sockets first so shutdown does not wait for them."""
        if self._socket_mode is not None:
            await self._socket_mode.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def response_url(self, hook: str = "cmd") -> str:
        """A response_url for a slash command or click, as Slack puts in its payloads."""
        return f"http://{HOST}:{self.port}/response/{hook}"

    async def _response_url(self, request: web.Request) -> web.Response:
        """Slack accepts a JSON message posted to a response_url (up to 5 times in 30 min)."""
        body = await request.json()
        self.responses.append({"hook": request.match_info["hook"], **body})
        return web.Response(text="ok")

    # ---- set-up

    def add_workspace(
        self, team_id: str, token: str, bot_user_id: str = "UBOT", name: str = "Acme"
    ) -> None:
        """A workspace with the app installed; its bot user and Slackbot come with it."""
        workspace = _Workspace(team_id, name, bot_user_id)
        workspace.users["USLACKBOT"] = _User("USLACKBOT", "Slackbot", tz="America/Los_Angeles")
        workspace.users[bot_user_id] = _User(bot_user_id, "NIS2 Coach", is_bot=True)
        self._teams[team_id] = workspace
        self._tokens[token] = team_id

    def add_user(
        self,
        team_id: str,
        user_id: str,
        name: str,
        *,
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        tz: str = "Europe/Copenhagen",
        locale: str = "en-US",
    ) -> None:
        """A member of the workspace, as users.info will describe them."""
        flags = {"is_admin": is_admin, "is_owner": is_owner, "is_bot": is_bot}
        flags |= {"deleted": deleted, "is_restricted": is_restricted}
        flags |= {"is_ultra_restricted": is_ultra_restricted, "tz": tz, "locale": locale}
        self._teams[team_id].users[user_id] = _User(user_id, name, **flags)

    def add_channel(self, team_id: str, channel_id: str, name: str, members: list[str]) -> None:
        """A public channel; list the bot user in members if the bot has joined."""
        self._teams[team_id].channels[channel_id] = _Channel(channel_id, name, list(members))

    def add_usergroup(self, team_id: str, usergroup_id: str, handle: str, users: list[str]) -> None:
        """A user group; usergroups.users.list looks it up by id."""
        self._teams[team_id].usergroups[usergroup_id] = (handle, list(users))

    def add_app_token(self, token: str) -> None:
        """An app-level token (xapp-...), the only kind apps.connections.open accepts."""
        self._app_tokens.add(token)

    def add_oauth_code(self, code: str, team_id: str, user_id: str) -> None:
        """A one-time code that oauth.v2.access exchanges for a bot token of team_id."""
        self._oauth_codes[code] = (team_id, user_id)

    def rate_limit(
        self, method: str, *, times: int = 1, retry_after: int = 1, team_id: str | None = None
    ) -> None:
        """Answer the next `times` calls of method with HTTP 429 and Retry-After."""
        self._limits.append(_Rule(method, team_id, times, "ratelimited", retry_after))

    def limit_rate(self, per_second: int | None, burst: int | None = None) -> None:
        """Answer 429 with Retry-After to a token calling faster than `per_second` a second.

        `burst` (default: one second's worth) is how many calls may come at once.
        """
        self.per_second, self.burst = per_second, burst
        self._buckets.clear()

    def fail(self, method: str, error: str, *, times: int = 1, team_id: str | None = None) -> None:
        """Answer the next `times` calls of method with ok false and error."""
        self._failures.append(_Rule(method, team_id, times, error))

    # ---- inspection

    def calls_to(self, method: str, team_id: str | None = None) -> list[Call]:
        """Only the calls that succeeded, which is what most assertions want."""
        return [
            call
            for call in self.calls
            if call.method == method and call.ok and team_id in (None, call.team_id)
        ]

    def dm_channel(self, team_id: str, user_id: str) -> str:
        """The id conversations.open returns for this user, stable for the fake's life."""
        return self._dm(self._teams[team_id], user_id).id

    # ---- HTTP

    async def _api(self, request: web.Request) -> web.Response:
        """Answer one Web API call the way slack.com/api would."""
        method = request.match_info["method"]
        params = await _read_params(request)
        token = _bearer(request) or params.get("token")
        token = str(token) if token else None
        params.pop("token", None)
        _add_basic_auth(request, params)
        call = Call(method, self._tokens.get(token or ""), params, time.monotonic())
        self.calls.append(call)
        status, body, headers = await self._respond(method, token, params)
        call.status, call.ok, call.error = status, body["ok"], body.get("error")
        if method == "oauth.v2.access" and body["ok"]:
            call.team_id = body["team"]["id"]
        call.done = time.monotonic()
        return web.json_response(body, status=status, headers=headers)

    async def _respond(
        self, method: str, token: str | None, params: Params
    ) -> tuple[int, Params, dict[str, str]]:
        """Decide refusals on arrival, then wait the latency, then do the work."""
        admitted: _Workspace | SlackError | None
        try:
            admitted = self._admit(method, token)
        except SlackError as error:
            admitted = error
        await self._pause(method)
        try:
            if isinstance(admitted, SlackError):
                raise admitted
            return 200, {"ok": True, **self._run(method, admitted, params)}, {}
        except SlackError as error:
            return error.status, error.body, error.headers

    def _admit(self, method: str, token: str | None) -> _Workspace | None:
        """Refuse the call as Slack would before doing any work; else name the workspace."""
        if method not in self._bot_methods and method not in self._open_methods:
            raise SlackError("unknown_method")
        workspace = self._authorise(method, token)
        team_id = workspace.team_id if workspace else None
        if rule := _take(self._limits, method, team_id):
            raise SlackError("ratelimited", status=429, retry_after=rule.retry_after)
        self._count(token)
        if rule := _take(self._failures, method, team_id):
            raise SlackError(rule.error)
        return workspace

    def _authorise(self, method: str, token: str | None) -> _Workspace | None:
        """The caller's workspace, or the error Slack gives for this token."""
        if method == "oauth.v2.access":
            return None
        if not token:
            raise SlackError("not_authed")
        if token in self._app_tokens:
            if method in APP_TOKEN_METHODS:
                return None
            raise SlackError("not_allowed_token_type")
        team_id = self._tokens.get(token)
        if team_id is None:
            raise SlackError("invalid_auth")
        if method in APP_TOKEN_METHODS:
            raise SlackError("not_allowed_token_type")
        return self._teams[team_id]

    def _count(self, token: str | None) -> None:
        """A token bucket per token: `per_second` calls a second, bursts of `burst` calls.

        Like Slack's own limiter it judges the average over a moment, so a client keeping
        to the rate is not refused for a moment's jitter; one above it soon gets 429.
        """
        if self.per_second is None or not token:
            return
        now = time.monotonic()
        capacity = float(self.burst or self.per_second)
        level, then = self._buckets.get(token, (capacity, now))
        level = min(capacity, level + (now - then) * self.per_second)
        if level < 1:
            self._buckets[token] = (level, now)
            raise SlackError("ratelimited", status=429, retry_after=1)
        self._buckets[token] = (level - 1, now)

    def _run(self, method: str, workspace: _Workspace | None, params: Params) -> Params:
        """Dispatch to the handler; only app-token and OAuth methods run without a workspace."""
        if workspace is None:
            return self._open_methods[method](params)
        return self._bot_methods[method](workspace, params)

    async def _pause(self, method: str) -> None:
        """Artificial latency, so tests can see concurrency and timeouts."""
        delay = self.latency + self.delays.get(method, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL step of files_upload_v2; answers text/plain like Slack's."""
        file_id = request.match_info["file_id"]
        upload = self._uploads.get(file_id)
        call = Call("upload", upload.team_id if upload else None, {}, time.monotonic())
        self.calls.append(call)
        content = await _upload_bytes(request)
        await self._pause("upload")
        call.params = {"file_id": file_id, "size": len(content)}
        call.done = time.monotonic()
        if upload is None:
            call.status, call.error = 404, "file_not_found"
            return web.Response(status=404, text="file not found")
        upload.content = content
        call.status, call.ok = 200, True
        return web.Response(text=f"OK - {len(content)}")

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        """The Socket Mode WebSocket, served by the attached FakeSocketMode."""
        if self._socket_mode is None:
            raise web.HTTPNotFound()
        return await self._socket_mode.serve(request)

    def _attach(self, socket_mode: FakeSocketMode) -> None:
        """Let FakeSocketMode serve /socket and apps.connections.open."""
        self._socket_mode = socket_mode

    # ---- lookups

    def _new_id(self, prefix: str) -> str:
        """Slack-looking ids: a type letter then upper-case alphanumerics."""
        return f"{prefix}F{next(self._ids):07d}"

    def _next_ts(self) -> str:
        """Unique, increasing message timestamps like "1700000000.000100"."""
        micros = 1_700_000_000_000_000 + next(self._ts) * 100
        if self.clock is not None:  # timestamps on the test's timeline, for history's `oldest`
            micros = max(int(self.clock() * 1_000_000), self._last_micros + 1)
            self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _dm(self, workspace: _Workspace, user_id: str) -> _Channel:
        """The one im channel between the bot and a user."""
        if user_id not in workspace.dms:
            members = [user_id, workspace.bot_user_id]
            channel = _Channel(self._new_id("D"), "", members, user=user_id)
            workspace.dms[user_id] = workspace.channels[channel.id] = channel
        return workspace.dms[user_id]

    def _user(self, workspace: _Workspace, user_id: Any) -> _User:
        """A user of this workspace, or user_not_found."""
        user = workspace.users.get(str(user_id or ""))
        if user is None:
            raise SlackError("user_not_found")
        return user

    def _channel(self, workspace: _Workspace, ref: Any) -> _Channel:
        """Resolve what chat.postMessage accepts: a channel id, a user id or a #name."""
        ref = str(ref or "")
        if ref in workspace.channels:
            return workspace.channels[ref]
        if ref in workspace.users:
            return self._dm(workspace, ref)
        for channel in workspace.channels.values():
            if channel.name and channel.name == ref.removeprefix("#"):
                return channel
        raise SlackError("channel_not_found")

    def _channel_by_id(self, workspace: _Workspace, channel_id: Any) -> _Channel:
        """Methods other than chat.postMessage accept only ids."""
        channel = workspace.channels.get(str(channel_id or ""))
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    # ---- auth, users, conversations

    def _auth_test(self, workspace: _Workspace, params: Params) -> Params:
        """Who the token is; slack_bolt reads bot_id, user_id and team_id from it."""
        slug = re.sub(r"[^a-z0-9]+", "", workspace.name.lower()) or "workspace"
        bot = workspace.users.get(workspace.bot_user_id)
        answer = {"url": f"https://{slug}.slack.com/", "team": workspace.name}
        answer |= {"user": _handle(bot.name) if bot else "bot", "team_id": workspace.team_id}
        answer |= {"user_id": workspace.bot_user_id, "bot_id": workspace.bot_id}
        return answer | {"is_enterprise_install": False}

    def _users_info(self, workspace: _Workspace, params: Params) -> Params:
        """One user; locale only when asked for, as in Slack."""
        user = self._user(workspace, params.get("user"))
        locale = _flag(params.get("include_locale"))
        return {"user": _user_object(workspace.team_id, user, locale)}

    def _users_list(self, workspace: _Workspace, params: Params) -> Params:
        """All users, bots and Slackbot included, one page at a time."""
        page, cursor = _page(list(workspace.users.values()), params, default_limit=0)
        locale = _flag(params.get("include_locale"))
        members = [_user_object(workspace.team_id, user, locale) for user in page]
        metadata = {"next_cursor": cursor}
        return {"members": members, "cache_ts": int(time.time()), "response_metadata": metadata}

    def _conversations_members(self, workspace: _Workspace, params: Params) -> Params:
        """Member ids of a channel, 100 a page unless limit says otherwise."""
        channel = self._channel_by_id(workspace, params.get("channel"))
        page, cursor = _page(channel.members, params, default_limit=100)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _conversations_info(self, workspace: _Workspace, params: Params) -> Params:
        """One channel or im."""
        channel = self._channel_by_id(workspace, params.get("channel"))
        count = _flag(params.get("include_num_members"))
        return {"channel": _channel_object(channel, workspace.bot_user_id, count)}

    def _conversations_open(self, workspace: _Workspace, params: Params) -> Params:
        """The bot's DM with one user; group DMs are not modelled."""
        if params.get("channel"):
            channel = self._channel_by_id(workspace, params["channel"])
        else:
            channel = self._dm(workspace, self._dm_partner(workspace, params).id)
        answer: Params = {"no_op": channel.opened, "already_open": channel.opened}
        channel.opened = True
        if _flag(params.get("return_im")):
            return answer | {"channel": _channel_object(channel, workspace.bot_user_id, False)}
        return answer | {"channel": {"id": channel.id}}

    def _dm_partner(self, workspace: _Workspace, params: Params) -> _User:
        """The one user a DM is opened with, refused the way Slack refuses it."""
        ids = [user_id for user_id in str(params.get("users") or "").split(",") if user_id]
        if not ids:
            raise SlackError("users_list_not_supplied")
        if len(ids) > 1:
            raise SlackError("not_supported_by_fake", detail="group DMs are not modelled")
        user = self._user(workspace, ids[0])
        if user.deleted:
            raise SlackError("user_disabled")
        if user.is_bot:
            raise SlackError("cannot_dm_bot")
        return user

    def _usergroups_users_list(self, workspace: _Workspace, params: Params) -> Params:
        """The user ids of a user group."""
        group = workspace.usergroups.get(str(params.get("usergroup") or ""))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group[1])}

    # ---- chat

    def _message(self, workspace: _Workspace, params: Params, ts: str) -> Params:
        """The message object Slack echoes back after a post."""
        message: Params = {"type": "message", "text": params.get("text") or "", "ts": ts}
        message |= {"user": workspace.bot_user_id, "bot_id": workspace.bot_id}
        message |= {"app_id": self.app_id, "team": workspace.team_id}
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if params.get(key) is not None:
                message[key] = params[key]
        return message

    def _record_message(
        self, method: str, workspace: _Workspace, channel: str, message: Params, user: str | None
    ) -> None:
        """Keep what was posted in the shape tests assert on."""
        entry = {"method": method, "team_id": workspace.team_id, "channel": channel}
        entry |= {"ts": message["ts"], "text": message["text"], "blocks": message.get("blocks")}
        entry |= {"user": user, "thread_ts": message.get("thread_ts")}
        self.messages.append(entry | {"metadata": message.get("metadata")})

    def _chat_post_message(self, workspace: _Workspace, params: Params) -> Params:
        """Post to a channel, an im, or a user id (which Slack turns into the im)."""
        channel = self._channel(workspace, params.get("channel"))
        _check_content(params)
        message = self._message(workspace, params, self._next_ts())
        workspace.posted[(channel.id, message["ts"])] = message
        self._record_message("chat.postMessage", workspace, channel.id, message, None)
        return {"channel": channel.id, "ts": message["ts"], "message": message}

    def _conversations_history(self, workspace: _Workspace, params: Params) -> Params:
        """Newest first, after `oldest`; metadata only with include_all_metadata, as Slack does."""
        channel = self._channel_by_id(workspace, params.get("channel"))
        oldest = float(params.get("oldest") or 0)
        with_metadata = _flag(params.get("include_all_metadata"))
        found = [
            dict(message)
            for (channel_id, ts), message in workspace.posted.items()
            if channel_id == channel.id and float(ts) > oldest
        ]
        found.sort(key=lambda message: float(message["ts"]), reverse=True)
        if not with_metadata:
            for message in found:
                message.pop("metadata", None)
        page, cursor = _page(found, params, 100)
        return {
            "messages": page,
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def _chat_post_ephemeral(self, workspace: _Workspace, params: Params) -> Params:
        """A message only one member sees; it cannot be updated later."""
        channel = self._channel(workspace, params.get("channel"))
        user = self._user(workspace, params.get("user"))
        if user.id not in channel.members:
            raise SlackError("user_not_in_channel")
        _check_content(params)
        message = self._message(workspace, params, self._next_ts())
        self._record_message("chat.postEphemeral", workspace, channel.id, message, user.id)
        return {"message_ts": message["ts"]}

    def _chat_update(self, workspace: _Workspace, params: Params) -> Params:
        """Edit a posted message; fields left out keep their old value, as in Slack."""
        channel = self._channel_by_id(workspace, params.get("channel"))
        ts = str(params.get("ts") or "")
        message = workspace.posted.get((channel.id, ts))
        if message is None:
            raise SlackError("message_not_found")
        _check_blocks(params.get("blocks"), MAX_MESSAGE_BLOCKS, "invalid_blocks")
        for key in ("text", "blocks", "attachments", "metadata"):
            if params.get(key) is not None:
                message[key] = params[key]
        message["edited"] = {"user": workspace.bot_user_id, "ts": self._next_ts()}
        entry = {"team_id": workspace.team_id, "channel": channel.id, "ts": ts}
        self.updates.append(entry | {"text": params.get("text"), "blocks": params.get("blocks")})
        return {"channel": channel.id, "ts": ts, "text": message["text"], "message": message}

    # ---- views

    def _views_open(self, workspace: _Workspace, params: Params) -> Params:
        """Open a modal; needs a trigger_id like the real one."""
        return self._new_modal(workspace, params, "views.open")

    def _views_push(self, workspace: _Workspace, params: Params) -> Params:
        """Push a modal onto the stack; the fake keeps no stack."""
        return self._new_modal(workspace, params, "views.push")

    def _new_modal(self, workspace: _Workspace, params: Params, method: str) -> Params:
        """Shared by views.open and views.push."""
        if not params.get("trigger_id"):
            raise SlackError("invalid_arguments", detail="trigger_id is required")
        return self._save_view(workspace, params, method, self._new_id("V"), "modal", None)

    def _views_update(self, workspace: _Workspace, params: Params) -> Params:
        """Replace a view by view_id or external_id, refusing a stale hash."""
        view_id = params.get("view_id") or self._external_views.get(
            (workspace.team_id, str(params.get("external_id") or ""))
        )
        current = self._view_store.get(str(view_id or ""))
        if current is None or current["team_id"] != workspace.team_id:
            raise SlackError("not_found")
        if params.get("hash") and params["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        kind, user = current["type"], current.get("_user_id")
        return self._save_view(workspace, params, "views.update", current["id"], kind, user)

    def _views_publish(self, workspace: _Workspace, params: Params) -> Params:
        """Set a user's App Home; the view id stays the same for that user."""
        user = self._user(workspace, params.get("user_id"))
        view_id = workspace.homes.setdefault(user.id, self._new_id("V"))
        current = self._view_store.get(view_id)
        if current and params.get("hash") and params["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        return self._save_view(workspace, params, "views.publish", view_id, "home", user.id)

    def _save_view(
        self,
        workspace: _Workspace,
        params: Params,
        method: str,
        view_id: str,
        kind: str,
        user_id: str | None,
    ) -> Params:
        """Check, store, record and answer one view."""
        view = params.get("view")
        _check_view(view, kind)
        stored = self._view_object(workspace, view, view_id)
        self._view_store[view_id] = stored | {"_user_id": user_id}
        if stored["external_id"]:
            self._external_views[(workspace.team_id, stored["external_id"])] = view_id
        entry = {"method": method, "team_id": workspace.team_id, "user_id": user_id}
        entry |= {"view": view, "trigger_id": params.get("trigger_id"), "view_id": view_id}
        self.views.append(entry)
        return {"view": stored}

    def _view_object(self, workspace: _Workspace, view: Params, view_id: str) -> Params:
        """The view Slack returns, with id and a fresh hash."""
        stored: Params = {"id": view_id, "team_id": workspace.team_id, "type": view["type"]}
        stored |= {"blocks": view.get("blocks", []), "state": {"values": {}}}
        for key in ("private_metadata", "callback_id", "external_id"):
            stored[key] = view.get(key, "")
        for key in ("title", "close", "submit"):
            stored[key] = view.get(key)
        stored |= {"clear_on_close": bool(view.get("clear_on_close"))}
        stored |= {"notify_on_close": bool(view.get("notify_on_close")), "hash": _new_hash()}
        stored |= {"root_view_id": view_id, "previous_view_id": None, "app_id": self.app_id}
        return stored | {"app_installed_team_id": workspace.team_id, "bot_id": workspace.bot_id}

    # ---- files

    def _files_get_upload_url(self, workspace: _Workspace, params: Params) -> Params:
        """Step 1 of files_upload_v2: an upload URL on this fake."""
        filename = str(params.get("filename") or "")
        length = _int(params.get("length"), -1)
        if not filename or length < 0:
            raise SlackError("invalid_arguments", detail="filename and length are required")
        upload = _Upload(self._new_id("F"), workspace.team_id, filename, length)
        self._uploads[upload.file_id] = upload
        upload_url = f"http://{HOST}:{self.port}/upload/{upload.file_id}"
        return {"upload_url": upload_url, "file_id": upload.file_id}

    def _files_complete_upload(self, workspace: _Workspace, params: Params) -> Params:
        """Step 3 of files_upload_v2: share the uploaded bytes."""
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments", detail="files must be a JSON list")
        uploads = [self._uploaded(workspace, entry) for entry in entries]
        channel_id = params.get("channel_id")
        if channel_id:
            channel_id = self._channel_by_id(workspace, channel_id).id
        channels = [c for c in str(params.get("channels") or "").split(",") if c]
        answer = []
        for upload, entry in zip(uploads, entries, strict=True):
            title = entry.get("title") or upload.filename
            self._record_file(workspace, upload, title, channel_id or next(iter(channels), None))
            self.files[-1] |= {"initial_comment": params.get("initial_comment")}
            self.files[-1] |= {"thread_ts": params.get("thread_ts"), "channels": channels}
            answer.append({"id": upload.file_id, "title": title})
        return {"files": answer}

    def _uploaded(self, workspace: _Workspace, entry: Any) -> _Upload:
        """An upload of this workspace whose bytes have arrived, used up once."""
        file_id = str(entry.get("id") or "") if isinstance(entry, dict) else ""
        upload = self._uploads.get(file_id)
        if upload is None or upload.team_id != workspace.team_id or upload.content is None:
            raise SlackError("file_not_found")
        del self._uploads[file_id]
        return upload

    def _record_file(
        self, workspace: _Workspace, upload: _Upload, title: str, channel_id: str | None
    ) -> None:
        """Keep what was shared in the shape tests assert on."""
        entry = {"team_id": workspace.team_id, "file_id": upload.file_id}
        entry |= {"filename": upload.filename, "title": title, "content": upload.content}
        self.files.append(entry | {"length": upload.length, "channel_id": channel_id})

    # ---- app token and OAuth

    def _apps_connections_open(self, params: Params) -> Params:
        """A fresh Socket Mode URL on this fake."""
        if self._socket_mode is None:
            raise SlackError("internal_error", detail="no FakeSocketMode is attached")
        return {"url": self._socket_mode.issue_url()}

    def _oauth_v2_access(self, params: Params) -> Params:
        """Exchange a one-time code for a bot token, registering the token for the team."""
        self._check_client(params)
        grant = self._oauth_codes.pop(str(params.get("code") or ""), None)
        if grant is None or grant[0] not in self._teams:
            raise SlackError("invalid_code")
        workspace, installer = self._teams[grant[0]], grant[1]
        token = f"xoxb-{workspace.team_id}-oauth"
        self._tokens[token] = workspace.team_id
        answer = {"app_id": self.app_id, "authed_user": {"id": installer}, "scope": self.scopes}
        answer |= {"token_type": "bot", "access_token": token}
        answer |= {"bot_user_id": workspace.bot_user_id, "enterprise": None}
        team = {"id": workspace.team_id, "name": workspace.name}
        return answer | {"team": team, "is_enterprise_install": False}

    def _check_client(self, params: Params) -> None:
        """Client credentials must be present, and right when oauth_client is set."""
        client_id, secret = params.get("client_id"), params.get("client_secret")
        if not client_id or (self.oauth_client and client_id != self.oauth_client[0]):
            raise SlackError("invalid_client_id")
        if self.oauth_client and secret != self.oauth_client[1]:
            raise SlackError("bad_client_secret")


class FakeSocketMode:
    """Socket Mode on FakeSlack's server: hands out URLs, sends envelopes, collects acks."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.connections = 0
        self.acks: list[Params] = []
        self.received: list[Params] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._issued = 0
        self._refused_handshakes = 0
        self._changed = asyncio.Condition()
        fake._attach(self)

    def refuse_next(self, times: int = 1, *, handshake: bool = False) -> None:
        """Fail the next apps.connections.open calls, or the next WebSocket handshakes."""
        if handshake:
            self._refused_handshakes += times
        else:
            self.fake.fail("apps.connections.open", "internal_error", times=times)

    def issue_url(self) -> str:
        """A URL for one connection, as apps.connections.open returns."""
        self._issued += 1
        return f"ws://{HOST}:{self.fake.port}/socket?n={self._issued}"

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """One client connection: hello first, then record what the client sends."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        socket = web.WebSocketResponse(timeout=2.0)
        await socket.prepare(request)
        await self._opened(socket)
        try:
            async for message in socket:
                await self._receive(message)
        finally:
            self._sockets.remove(socket)
        return socket

    def _refusal(self, request: web.Request) -> web.Response | None:
        """Refuse URLs never issued and handshakes the test asked to fail."""
        ticket = request.query.get("n", "")
        if not ticket.isdigit() or not 0 < int(ticket) <= self._issued:
            return web.Response(status=401, text="invalid ticket")
        if self._refused_handshakes:
            self._refused_handshakes -= 1
            return web.Response(status=503, text="refused by the test")
        return None

    async def _opened(self, socket: web.WebSocketResponse) -> None:
        """Count the connection and greet it the way Slack does."""
        self.connections += 1
        self._sockets.append(socket)
        debug = {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060}
        hello = {"type": "hello", "num_connections": len(self._sockets), "debug_info": debug}
        await socket.send_json(hello | {"connection_info": {"app_id": self.fake.app_id}})
        await self._notify()

    async def _receive(self, message: WSMessage) -> None:
        """Keep every JSON message; those with an envelope_id are acks."""
        if message.type != WSMsgType.TEXT:
            return
        data = json.loads(message.data)
        self.received.append(data)
        if isinstance(data, dict) and "envelope_id" in data:
            self.acks.append(data)
            await self._notify()

    async def _notify(self) -> None:
        """Wake whoever waits for a connection or an ack."""
        async with self._changed:
            self._changed.notify_all()

    def _current(self) -> web.WebSocketResponse:
        """The newest open connection, which is where Slack would send."""
        for socket in reversed(self._sockets):
            if not socket.closed:
                return socket
        raise RuntimeError("no Socket Mode connection is open")

    async def send_envelope(
        self,
        payload: Params,
        type: str = "events_api",
        envelope_id: str | None = None,
        retry_attempt: int = 0,
    ) -> str:
        """Deliver an event, interaction or command; returns the envelope_id to await."""
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "payload": payload, "type": type}
        envelope["accepts_response_payload"] = type != "events_api"
        if type == "events_api":
            reason = "timeout" if retry_attempt else ""
            envelope |= {"retry_attempt": retry_attempt, "retry_reason": reason}
        await self._current().send_json(envelope)
        return envelope_id

    async def send_disconnect(self) -> None:
        """Ask the client to reconnect, then close its socket, as Slack does on refresh."""
        socket = self._current()
        warning = {"type": "disconnect", "reason": "refresh_requested"}
        await socket.send_json(warning | {"debug_info": {"host": "applink-fake"}})
        await socket.close(code=WSCloseCode.GOING_AWAY)

    async def wait_connected(self, count: int, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until `count` connections have been accepted and one is open."""
        await self._wait(lambda: self.connections >= count and self._open(), timeout)

    async def wait_ack(self, envelope_id: str, timeout: float = 10) -> Params:  # noqa: ASYNC109
        """Wait for the client's acknowledgement of one envelope."""
        await self._wait(lambda: self._ack(envelope_id) is not None, timeout)
        return self._ack(envelope_id) or {}

    def _ack(self, envelope_id: str) -> Params | None:
        """The ack of envelope_id, if it came."""
        return next((ack for ack in self.acks if ack["envelope_id"] == envelope_id), None)

    def _open(self) -> bool:
        """Whether any connection is open."""
        return any(not socket.closed for socket in self._sockets)

    async def _wait(self, ready: Callable[[], bool], seconds: float) -> None:
        """Sleep until ready() holds, re-checking whenever something changes."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(ready)

    async def close_all(self) -> None:
        """Close every connection, so the server can stop at once."""
        for socket in list(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY)
