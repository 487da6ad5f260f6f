"""slack_sdk's own tables for OAuth installations and state, in our database.

They are defined by slack_sdk and created by our migrations, so the installation
store works on SQLite and PostgreSQL alike. Kept apart from the models so the
core never imports a Slack library.
"""

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from bot.store.models import Base

INSTALLATIONS = "slack_installations"
BOTS = "slack_bots"
OAUTH_STATES = "slack_oauth_states"

SQLAlchemyInstallationStore.build_installations_table(Base.metadata, INSTALLATIONS)
SQLAlchemyInstallationStore.build_bots_table(Base.metadata, BOTS)
SQLAlchemyOAuthStateStore.build_oauth_states_table(Base.metadata, OAUTH_STATES)
