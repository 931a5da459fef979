from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "CRM webhooks"
admin.site.site_title = "CRM webhooks"
admin.site.index_title = "Configuration and delivery logs"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("crm.urls")),
]
