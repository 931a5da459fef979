"""CRM users: the people of an organization who own records and receive failure e-mails, and their admin
logins."""
from django.conf import settings
from django.db import models

from crm.models.organizations import Organization


class CrmUser(models.Model):
    """A person in the CRM: owns records, receives failure e-mails; may log in to the admin."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="users", verbose_name="organization",
        help_text="The organization this user works in; a staff login linked to the user sees only its data.",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="crm_user",
        verbose_name="login", help_text="The Django login of this person, if they use the admin.",
    )
    first_name = models.CharField("first name", max_length=100, blank=True,
                                  help_text="The merge field ${User.First Name} when this user owns the record.")
    last_name = models.CharField("last name", max_length=100,
                                 help_text="The merge field ${User.Last Name} when this user owns the record.")
    email = models.EmailField("e-mail",
                              help_text="Failure e-mails about the records this user owns go here; also ${User.Email}.")
    mobile = models.CharField("mobile", max_length=50, blank=True, help_text="Available as ${User.Mobile}.")
    phone = models.CharField("phone", max_length=50, blank=True,
                             help_text="The merge field ${User.Phone} when this user owns the record.")
    role = models.CharField("role", max_length=100, blank=True, help_text="E.g. 'Sales Rep', 'CEO'.")
    is_admin = models.BooleanField("CRM administrator", default=False, help_text="Admins are told about failures.")
    is_active = models.BooleanField("active", default=True,
                                    help_text=("Inactive users receive no failure e-mails and are not offered as "
                                               "owners."))

    class Meta:
        verbose_name = "CRM user"
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "email"], name="crm_user_unique_email_per_org"),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
