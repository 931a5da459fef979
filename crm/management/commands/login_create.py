from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from crm import services
from crm.models import Organization


class Command(BaseCommand):
    help = ("Make a staff login with a role (auditor or integration-admin) in one organization, in one step; "
            "prints its generated password once.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--organization", required=True, help="The organization's name or id.")
        parser.add_argument("--role", required=True, action="append", choices=sorted(services.STAFF_ROLES),
                            help="auditor: views everything, changes nothing, sees no secret; integration-admin: "
                                 "manages webhooks and rules, sends tests, resends; record-editor: adds and "
                                 "changes records. Give it more than once for several roles.")
        parser.add_argument("--email", required=True, help="The person's e-mail; an existing CRM user with it is "
                                                           "linked, else one is made.")
        parser.add_argument("--username", default="", help="The login's user name (default: the e-mail).")
        parser.add_argument("--first-name", default="")
        parser.add_argument("--last-name", default="")

    def handle(self, *args, organization: str, role: list[str], email: str, username: str, first_name: str,
               last_name: str, **options) -> None:
        found = Organization.objects.filter(name=organization).first()
        if found is None and organization.isdecimal() and organization.isascii():
            found = Organization.objects.filter(pk=int(organization)).first()
        if found is None:
            names = ", ".join(Organization.objects.order_by("name").values_list("name", flat=True)) or "none yet"
            raise CommandError(f"There is no organization “{organization}” (organizations: {names}).")
        try:
            user, password = services.staff_login_create(organization=found, roles=role, email=email,
                                                         username=username, first_name=first_name,
                                                         last_name=last_name)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        names = " and ".join(services.STAFF_ROLES[name] for name in dict.fromkeys(role))
        self.stdout.write(self.style.SUCCESS(f"Login “{user.get_username()}” made: {names} of {found.name} only."))
        self.stdout.write(f"Password: {password}  (shown only now; the user can change it in the admin)")
