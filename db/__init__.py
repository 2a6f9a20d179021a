"""Postgres access: connection pool, migrations, embedded server, named queries."""
