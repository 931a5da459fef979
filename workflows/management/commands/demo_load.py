import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from crm.models import CrmUser, Organization
from dispatcher.config_io.demo import admin_password_file
from workflows.demo import DEMO_API_SCOPES, demo_load, demo_second_organization_load


class Command(BaseCommand):
    help = "Load the demo organization, users, records, webhooks and workflow rules (idempotent); print the logins."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/", help="Admin address to print.")

    def handle(self, *args, url: str, **options) -> None:
        organization, api_key = demo_load()
        password = self._admin_password()
        User = get_user_model()
        admin, created = User.objects.get_or_create(
            username="admin", defaults={"email": "patricia.boyle@zylker.example", "is_staff": True, "is_superuser": True}
        )
        if created or not admin.check_password(password):
            admin.set_password(password)
            admin.save()
        CrmUser.objects.filter(organization=organization, email=admin.email, user__isnull=True).update(user=admin)
        second = demo_second_organization_load()
        staff = [self._staff_login("zylker", organization, "ted.watson@zylker.example", password),
                 self._staff_login("acme", second, "alex.morgan@acme.example", password)]
        self.stdout.write(self.style.SUCCESS(f"Demo data ready for {organization.name} and {second.name}."))
        self.stdout.write(f"Admin: {url}  user: admin  password: {password}  (superuser: every organization)")
        for username, org in staff:
            self.stdout.write(f"       {url}  user: {username}  password: {password}  (Integration admin of "
                              f"{org.name} only)")
        key_file = admin_password_file().with_name("api-key")
        if api_key:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(api_key)
            key_file.chmod(0o600)
        if key_file.exists():
            self.stdout.write(f"REST API key (X-API-Key): {key_file.read_text().strip()}")
            self.stdout.write(f"       scopes: {', '.join(DEMO_API_SCOPES)} (every curl line of "
                              "docs/integrate/rest-api.md)")

    def _staff_login(self, username: str, organization: Organization, email: str,
                     password: str) -> tuple[str, Organization]:
        """A staff login in the Integration admin and Record editor groups (webhooks and rules, and the deals
        that test them), working in one organization through its CRM user."""
        from django.contrib.auth.models import Group

        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": email, "is_staff": True})
        if not user.check_password(password):
            user.set_password(password)
            user.save()
        user.groups.add(*Group.objects.filter(name__in=["Integration admin", "Record editor"]))
        CrmUser.objects.filter(organization=organization, email=email).update(user=user)
        return username, organization

    def _admin_password(self) -> str:
        """DEMO_ADMIN_PASSWORD if set; else one generated on the first run and kept in var/admin-password."""
        # The password demo_load gives the demo logins. Default: one generated on the first run, in var/admin-password.
        if from_env := os.environ.get("DEMO_ADMIN_PASSWORD"):
            return from_env
        path = admin_password_file()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(12))
            path.chmod(0o600)
        return path.read_text().strip()
