from django.contrib.admin.apps import AdminConfig


class CrmAdminConfig(AdminConfig):
    """The Django admin on the project's site (config.admin_base.CrmAdminSite)."""

    default_site = "config.admin_base.CrmAdminSite"
