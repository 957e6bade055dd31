"""Alembic migrations, applied programmatically by `synapse.storage.migrate`."""
