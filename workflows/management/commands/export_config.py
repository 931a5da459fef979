import json
import os

from django.core.management.base import BaseCommand, CommandError

from crm.models import Organization
from workflows.config_io import config_export_all


class Command(BaseCommand):
    help = "Write the webhooks and workflow rules as JSON (secrets left out unless --include-secrets)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--organization", help="Only this organization (by name).")
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")
        parser.add_argument(
            "--include-secrets", action="store_true",
            help="Also write passwords, custom parameter values and signing secrets (keep such a file private).",
        )

    def handle(self, *args, organization: str | None, output: str | None, include_secrets: bool, **options) -> None:
        org = None
        if organization is not None:
            org = Organization.objects.filter(name=organization).first()
            if org is None:
                raise CommandError(f"There is no organization named “{organization}”.")
        text = json.dumps(config_export_all(organization=org, include_secrets=include_secrets), indent=2,
                          ensure_ascii=False) + "\n"
        if output:
            # Owner-only from the first byte (a file with secrets must never be readable by others, even briefly).
            descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT: set it
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
