"""Module metadata: the modules of an organization, their fields and the field types' choices; writes to either
renew the organization's metadata version."""
from django.db import models

from crm.models.organizations import Organization, schema_changed


class MetadataQuerySet(models.QuerySet):
    """Bulk writes to modules and fields bump the organization's metadata version, like single saves do."""

    organization_path = ""

    def _organizations(self) -> list[int]:
        return list(self.values_list(self.organization_path, flat=True).distinct())

    def update(self, **kwargs) -> int:
        organizations = self._organizations()
        count = super().update(**kwargs)
        schema_changed(organizations)
        return count

    def delete(self):
        organizations = self._organizations()
        result = super().delete()
        schema_changed(organizations)
        return result


class ModuleQuerySet(MetadataQuerySet):
    organization_path = "organization_id"

    def webhook_capable(self) -> "ModuleQuerySet":
        return self.filter(supports_webhooks=True)


class Module(models.Model):
    """A CRM module (Leads, Deals, a custom module…): the type of a record."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="modules", verbose_name="organization",
        help_text="Modules belong to one organization; its webhooks and rules use them.",
    )
    api_name = models.CharField(
        "API name", max_length=100, help_text="Name used in merge fields and the API, e.g. 'Deals'."
    )
    singular_label = models.CharField("singular label", max_length=100, help_text="E.g. 'Deal'.")
    aliases = models.CharField(
        "merge-field aliases", max_length=200, blank=True,
        help_text="Other names accepted in merge fields, comma separated, e.g. 'Potentials, Potential'.",
    )
    name_field = models.CharField(
        "name field", max_length=100, blank=True,
        help_text="API name of the field that names a record (shown for lookups), e.g. 'Deal_Name'.",
    )
    is_custom = models.BooleanField("custom module", default=False,
                                    help_text="Made by the organization, not one of the CRM's standard modules.")
    supports_webhooks = models.BooleanField(
        "webhooks allowed", default=True, help_text="Call logs and Notes cannot have webhooks (seed 003)."
    )

    objects = ModuleQuerySet.as_manager()

    class Meta:
        verbose_name = "module"
        ordering = ["organization", "api_name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "api_name"], name="module_unique_api_name_per_org"),
        ]

    def __str__(self) -> str:
        return self.api_name

    @property
    def merge_names(self) -> set[str]:
        """Every spelling that may stand before the dot of a merge field for this module."""
        names = {self.api_name, self.singular_label}
        names.update(alias.strip() for alias in self.aliases.split(",") if alias.strip())
        return names


class FieldType(models.TextChoices):
    TEXT = "text", "Text"
    TEXTAREA = "textarea", "Multi-line text"
    EMAIL = "email", "E-mail"
    PHONE = "phone", "Phone"
    URL = "url", "URL"
    NUMBER = "number", "Number"
    DECIMAL = "decimal", "Decimal"
    CURRENCY = "currency", "Currency"
    DATE = "date", "Date"
    DATETIME = "datetime", "Date/time"
    BOOLEAN = "boolean", "Checkbox"
    PICKLIST = "picklist", "Pick list"
    LOOKUP = "lookup", "Lookup"
    USER = "user", "User"


class SystemField(models.TextChoices):
    """Fields every module has, held in record columns rather than in the values document."""

    ID = "id", "Record id"
    OWNER = "Owner", "Record owner"
    CREATED_TIME = "Created_Time", "Created time"
    MODIFIED_TIME = "Modified_Time", "Modified time"


class FieldQuerySet(MetadataQuerySet):
    organization_path = "module__organization_id"

    def usable(self) -> "FieldQuerySet":
        """Fields a merge field or the API may use: neither deleted nor switched off with their integration."""
        return self.filter(is_deleted=False, is_disabled=False)


class Field(models.Model):
    """Metadata of one module field; its label is what merge fields refer to (``${Deals.Deal Name}``).

    What its type does (cleaning, rendering, comparing, capturing) is asked of ``crm.field_types.kind_of(field)``:
    the types sit above the tables and import them, so the tables never import the types."""

    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="fields", verbose_name="module",
                               help_text="The module whose records hold this field.")
    label = models.CharField("label", max_length=100, help_text="As used in merge fields, e.g. 'Account Name'.")
    api_name = models.CharField(
        "API name", max_length=100, help_text="Key in the record's values and in the API, e.g. 'Account_Name'."
    )
    field_type = models.CharField("type", max_length=20, choices=FieldType.choices, default=FieldType.TEXT,
                                  help_text=("How values are checked, rendered in merge fields and compared in "
                                             "conditions."))
    lookup_module = models.ForeignKey(
        Module, on_delete=models.PROTECT, null=True, blank=True, related_name="lookup_fields",
        verbose_name="looks up", help_text="For lookup fields: the module of the referenced record.",
    )
    picklist_values = models.JSONField(
        "pick-list values", default=list, blank=True, help_text="For pick lists: the allowed values, in order."
    )
    is_required = models.BooleanField("required", default=False,
                                      help_text="A record cannot be saved without a value for it.")
    is_system = models.BooleanField("system field", default=False, help_text="Id, owner and timestamps.")
    is_deleted = models.BooleanField(
        "deleted", default=False, help_text="Deleted fields render as ${Unsupported_Field} in webhooks."
    )
    is_disabled = models.BooleanField(
        "disabled", default=False,
        help_text="Fields of a switched-off feature or integration; they render as ${Unsupported_Field}.",
    )
    position = models.PositiveIntegerField("position", default=0,
                                           help_text="Order in lists and in the merge-field catalogue.")

    objects = FieldQuerySet.as_manager()

    class Meta:
        verbose_name = "field"
        ordering = ["module", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["module", "api_name"], name="field_unique_api_name_per_module"),
            models.UniqueConstraint(
                fields=["module", "label"], condition=models.Q(is_deleted=False), name="field_unique_live_label"
            ),
            models.CheckConstraint(
                condition=~models.Q(field_type="lookup") | models.Q(lookup_module__isnull=False),
                name="field_lookup_has_module",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.module.api_name}.{self.label}"

    @property
    def is_usable(self) -> bool:
        return not (self.is_deleted or self.is_disabled)
