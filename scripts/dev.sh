#!/usr/bin/env bash
# Command 1: set up this machine and run the product (web, worker, beat) on the embedded defaults:
# SQLite in ./var and a file-system Celery broker. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
python manage.py migrate --no-input -v0
python manage.py collectstatic --no-input -v0
python manage.py demo_load --url "http://127.0.0.1:${PORT:-8000}/admin/"
exec honcho start --port "${PORT:-8000}"
