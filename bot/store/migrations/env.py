"""Alembic runs on the connection our Database hands it; offline mode is not used."""

from alembic import context

from bot.store import slack_tables  # noqa: F401  (its tables join the metadata)
from bot.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with 'nis2-coach db upgrade'")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
