import json
import sys

from django.core.management.base import BaseCommand, CommandError

from dispatcher.config_io.report import ConfigError
from workflows.config_io import config_import_all, report_lines


class Command(BaseCommand):
    help = "Create or update webhooks and workflow rules from a JSON configuration file (all or nothing). Use - for standard input."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="Path of the JSON file, or - for standard input.")
        parser.add_argument("--dry-run", action="store_true", help="Check the file and report, change nothing.")

    def handle(self, *args, file: str, dry_run: bool, **options) -> None:
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file} is not UTF-8 text (a configuration file is JSON in UTF-8).") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(
                f"{file} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
            ) from None
        except (RecursionError, ValueError) as error:  # nested too deeply; an integer with too many digits
            reason = "it is nested too deeply" if isinstance(error, RecursionError) else str(error)
            raise CommandError(f"{file} cannot be read as JSON: {reason}.") from None
        try:
            report = config_import_all(data=data, dry_run=dry_run)
        except ConfigError as error:
            raise CommandError("Nothing was imported:\n  " + "\n  ".join(error.problems)) from None
        for line in report_lines(report, dry_run=dry_run):
            self.stdout.write(line)
