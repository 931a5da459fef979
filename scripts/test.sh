#!/usr/bin/env bash
# Command 2: run the whole test suite. Extra arguments go to pytest (e.g. -k preview).
# Uses DATABASE_URL / CELERY_BROKER_URL when set (CI sets PostgreSQL and Redis), else SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
python manage.py makemigrations --check --dry-run
ruff check --quiet .   # lint (ruff.toml)
mypy   # types (mypy.ini, django-stubs)
lint-imports --no-cache   # app boundaries (.importlinter): layers, and only public modules across apps
too_complex=$(radon cc --min D --exclude "*/migrations/*,.venv/*,var/*" .)
if [ -n "$too_complex" ]; then
  echo "Functions above radon grade C (cyclomatic complexity over 20); split them:" >&2
  echo "$too_complex" >&2
  exit 1
fi
python scripts/docs_generate.py --check   # generated pages in step with the code (config/docs_pages.py)
# The site (mkdocs.yml): broken links, pages missing from the nav fail here. Not --quiet: it hides the
# warnings from --strict, which then passes. The variable silences mkdocs-material's banner.
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir var/site
# pytest exits with 5 when it collected no tests; with set -e that fails the run, as it should.
python -m pytest "$@"
