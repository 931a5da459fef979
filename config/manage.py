"""The product's command line, in one place: `crm-webhooks <command>` once the package is installed
(pyproject.toml's entry point) and `python manage.py <command>` in a checkout run this same main."""
import os
import sys

from django.core.management import execute_from_command_line


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    execute_from_command_line(sys.argv)
