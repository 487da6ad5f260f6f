"""The production botbuilder CloudAdapter, pointed at a FakeConnector instead of Microsoft.

``adapter_for`` builds what production builds: ``CloudAdapter(
ConfigurationBotFrameworkAuthentication(config))`` with the configuration attributes botbuilder
reads (APP_ID, APP_PASSWORD, APP_TYPE, APP_TENANTID; samples fill them from the MicrosoftAppId,
MicrosoftAppPassword, MicrosoftAppType and MicrosoftAppTenantId variables). Setting none of the
URL overrides keeps botbuilder on its public-cloud class,
``_PublicCloudBotFrameworkAuthentication``, as in production. Two things differ, only these:

1. Inbound: ``ChannelValidation.open_id_metadata_endpoint`` (a class attribute botbuilder
   provides for this) names the fake's OpenID document instead of login.botframework.com.
   Restored when the fake stops.
2. Outbound: the ``credentials_factory`` that ConfigurationBotFrameworkAuthentication accepts.
   It asks the production factory for the credentials, so the MultiTenant/SingleTenant choice,
   the tenant, the app id check and the scope are production's; it then swaps only the token
   fetch. MSAL cannot be used here: it accepts only https authorities, and for a host it does
   not know it first asks https://login.microsoftonline.com/common/discovery/instance, and
   botbuilder passes it neither validate_authority nor instance_discovery.

Not exercised, therefore: MSAL (authority and tenant discovery, its token cache, its HTTP),
TLS, and the real URLs. Everything else is production: CloudAdapter, JwtTokenValidation,
ChannelValidation, JwtTokenExtractor, the credential factories, AppCredentials.signed_session,
msrest's ConnectorClient with requests and urllib3's retry policy, ErrorResponseException.

Setting URL overrides such as TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL instead would switch
botbuilder to ``_ParameterizedBotFrameworkAuthentication``, a separate implementation that
production never runs; that is why this module does not use them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botframework.connector.auth import (
    AppCredentials,
    ChannelValidation,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)

from tests.fakes.bot_connector import FakeConnector

REFRESH_MARGIN = 300


@dataclass(frozen=True)
class TeamsConfig:
    """The attributes botbuilder reads off its configuration object, by botbuilder's names."""

    APP_ID: str
    APP_PASSWORD: str
    APP_TYPE: str = "MultiTenant"
    APP_TENANTID: str | None = None


class LoopbackAppCredentials(MicrosoftAppCredentials):
    """Production credentials whose token comes from the fake instead of MSAL and Entra ID."""

    def __init__(self, production: MicrosoftAppCredentials, login_url: str) -> None:
        super().__init__(
            production.microsoft_app_id,
            production.microsoft_app_password,
            production.tenant,
            production.oauth_scope,
        )
        self.oauth_endpoint = production.oauth_endpoint
        self._login_url = login_url
        self._cached: tuple[str, float] | None = None

    @property
    def token_url(self) -> str:
        """Production's authority (login.microsoftonline.com/{tenant}) moved onto the fake."""
        tenant = urlsplit(self.oauth_endpoint).path.strip("/")
        return f"{self._login_url}{tenant}/oauth2/v2.0/token"

    def get_access_token(self, force_refresh: bool = False) -> str:
        """Blocking like MSAL's call, and cached per credential object as MSAL's cache is."""
        if self._cached and not force_refresh and self._cached[1] > time.time() + REFRESH_MARGIN:
            return self._cached[0]
        scope = self.oauth_scope
        if not scope.endswith("/.default"):
            scope += "/.default"
        form = {
            "grant_type": "client_credentials",
            "client_id": self.microsoft_app_id,
            "client_secret": self.microsoft_app_password,
            "scope": scope,
        }
        answer = requests.post(self.token_url, data=form, timeout=10).json()
        if "access_token" not in answer:
            raise PermissionError(
                f"Failed to get access token with error: {answer.get('error')}, "
                f"error_description: {answer.get('error_description')}"
            )
        self._cached = (answer["access_token"], time.time() + float(answer["expires_in"]))
        return answer["access_token"]


class LoopbackCredentialsFactory(ServiceClientCredentialsFactory):
    """Production's credential decisions, with each credential's token fetch sent to the fake."""

    def __init__(self, configuration: TeamsConfig, login_url: str) -> None:
        self._production = ConfigurationServiceClientCredentialFactory(configuration)
        self._login_url = login_url

    async def is_valid_app_id(self, app_id: str) -> bool:
        """Inbound audience checks stay production's."""
        return await self._production.is_valid_app_id(app_id)

    async def is_authentication_disabled(self) -> bool:
        """Anonymous mode (no app id) stays production's."""
        return await self._production.is_authentication_disabled()

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        """Let production choose tenant and scope, then only redirect where the token comes from."""
        credentials = await self._production.create_credentials(
            app_id, oauth_scope, login_endpoint, validate_authority
        )
        if not isinstance(credentials, MicrosoftAppCredentials) or not credentials.microsoft_app_id:
            return credentials
        return LoopbackAppCredentials(credentials, self._login_url)


def redirect_channel_metadata(fake: FakeConnector) -> None:
    """Make botbuilder's public-cloud channel validation read the fake's keys, until it stops."""
    previous = ChannelValidation.open_id_metadata_endpoint
    ChannelValidation.open_id_metadata_endpoint = fake.openid_url
    fake.on_stop(lambda: setattr(ChannelValidation, "open_id_metadata_endpoint", previous))


def authentication_for(
    fake: FakeConnector, config: TeamsConfig
) -> ConfigurationBotFrameworkAuthentication:
    """What production passes to CloudAdapter, plus the test credentials factory."""
    redirect_channel_metadata(fake)
    factory = LoopbackCredentialsFactory(config, fake.login_url)
    return ConfigurationBotFrameworkAuthentication(config, credentials_factory=factory)


def adapter_for(
    fake: FakeConnector,
    *,
    app_id: str,
    password: str,
    app_type: str = "MultiTenant",
    tenant_id: str | None = None,
) -> CloudAdapter:
    """A fresh production CloudAdapter (as after a restart) whose app the fake knows."""
    single = app_type.lower() == "singletenant"
    fake.register_app(app_id, password, tenant_id=tenant_id if single else None)
    config = TeamsConfig(app_id, password, app_type, tenant_id)
    return CloudAdapter(authentication_for(fake, config))
