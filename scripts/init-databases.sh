#!/usr/bin/env bash
# PostgreSQL container init (docker-entrypoint-initdb.d): one database per service of the seed,
# plus the cloud's edge-node registry. Runs once, on an empty data volume.
set -euo pipefail
for db in user_service_db content_service_db notification_service_db course_service_db \
          timetable_service_db attendance_service_db announcement_service_db \
          communication_service_db analytics_service_db edge_registry_db; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE $db OWNER \"$POSTGRES_USER\""
done
