"""Records: the field values of one module's record and its owner."""
from django.db import models

from crm.models.modules import Module
from crm.models.users import CrmUser


class Record(models.Model):
    """A CRM record: field values keyed by API name; lookups hold the id of the referenced record."""

    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="records", verbose_name="module",
                               help_text="The module (Deals, Leads, …) whose fields the values follow.")
    owner = models.ForeignKey(
        CrmUser, on_delete=models.PROTECT, related_name="owned_records", verbose_name="owner",
        help_text="Record owner: ${User.…} merge fields and failure e-mails refer to this person.",
    )
    values = models.JSONField("values", default=dict, blank=True, help_text="Field values keyed by API name.")
    created_at = models.DateTimeField("created", auto_now_add=True,
                                      help_text="The merge field ${Module.Created Time}, e.g. ${Deals.Created Time}.")
    modified_at = models.DateTimeField("modified", auto_now=True,
                                       help_text="The merge field ${Module.Modified Time}; set on every change.")

    class Meta:
        verbose_name = "record"
        ordering = ["-id"]
        indexes = [models.Index(fields=["module", "-id"], name="record_module_recent")]

    def __str__(self) -> str:
        return f"{self.module.singular_label} {self.display_name} (#{self.pk})"

    @property
    def display_name(self) -> str:
        name = self.values.get(self.module.name_field) if self.module.name_field else None
        return str(name) if name not in (None, "") else f"#{self.pk}"
