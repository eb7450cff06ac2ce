#!/bin/sh
# Creates Temporal's two databases on PostgreSQL and brings their schemas to the version of
# the admin-tools image (the same version as the server image). Safe to run again: an
# existing database is kept and only missing schema versions are applied.
set -eu

SCHEMA_DIR=/etc/temporal/schema/postgresql/v12
sql() {
  temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" \
    -u "$SQL_USER" --pw "$SQL_PASSWORD" "$@"
}

for db in temporal temporal_visibility; do
  sql --db "$db" create || echo "database $db exists"
done
sql --db temporal setup-schema -v 0.0
sql --db temporal update-schema -d "$SCHEMA_DIR/temporal/versioned"
sql --db temporal_visibility setup-schema -v 0.0
sql --db temporal_visibility update-schema -d "$SCHEMA_DIR/visibility/versioned"
echo "Temporal schemas are up to date"
