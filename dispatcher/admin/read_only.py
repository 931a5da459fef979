"""The base of the log pages (deliveries, attempts, daily usage)."""
from django.contrib import admin

from config.admin_base import CrmAdminMixin


class ReadOnlyAdmin(CrmAdminMixin, admin.ModelAdmin):
    """Logs are facts: nobody adds or edits them in the admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
