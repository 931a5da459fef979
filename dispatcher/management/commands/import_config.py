import json
import sys

from django.core.management.base import BaseCommand, CommandError

from dispatcher.config_io import ConfigError, config_import


class Command(BaseCommand):
    help = "Create or update webhooks from a JSON configuration file (all or nothing). Use - for standard input."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="Path of the JSON file, or - for standard input.")
        parser.add_argument("--dry-run", action="store_true", help="Check the file and report, change nothing.")

    def handle(self, *args, file: str, dry_run: bool, **options) -> None:
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"{file} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).")
        try:
            report = config_import(data=data, dry_run=dry_run)
        except ConfigError as error:
            raise CommandError("Nothing was imported:\n  " + "\n  ".join(error.problems)) from None
        verb = "Would create" if dry_run else "Created"
        self.stdout.write(f"{verb} {len(report.created)} webhook(s): {', '.join(report.created) or '-'}")
        verb = "Would update" if dry_run else "Updated"
        self.stdout.write(f"{verb} {len(report.updated)} webhook(s): {', '.join(report.updated) or '-'}")
