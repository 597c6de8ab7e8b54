#!/bin/sh
# Creates (or upgrades) Temporal's persistence and visibility schemas in its own PostgreSQL.
# Safe to run again: `create` fails harmlessly on an existing database, `update-schema` applies
# only the versions that are missing.
set -eu
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
port=${DB_PORT:-5432}
sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$port" "$@"; }

for database in temporal temporal_visibility; do
  sql --db "$database" create || echo "database $database exists"
done
if sql --db temporal setup-schema -v 0.0; then :; else echo 'temporal schema exists'; fi
sql --db temporal update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned
if sql --db temporal_visibility setup-schema -v 0.0; then :; else echo 'visibility schema exists'; fi
sql --db temporal_visibility update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned
echo 'Temporal schemas are up to date'
