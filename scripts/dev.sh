#!/usr/bin/env bash
# Command 1: set up this machine and run the product (web, and a worker with its scheduler) on the embedded defaults:
# SQLite in ./var and a file-system Celery broker. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
export PORT="${PORT:-8000}"
export SITE_URL="${SITE_URL:-http://127.0.0.1:${PORT}}"  # links in e-mails and resource_uri
python manage.py migrate --no-input -v0
python manage.py collectstatic --no-input -v0
python manage.py demo_load --url "${SITE_URL%/}/admin/"
exec honcho start --port "${PORT}"
