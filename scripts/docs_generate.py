"""Write the generated documentation pages (config/docs_pages.py); with --check, only list the stale ones
and exit 1 if there are any."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from config.docs_pages import pages_stale, pages_write  # noqa: E402

if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        stale = pages_stale()
        for path in stale:
            print(f"docs/{path} is stale: run python scripts/docs_generate.py")
        sys.exit(1 if stale else 0)
    for path in pages_write():
        print(f"wrote docs/{path}")
