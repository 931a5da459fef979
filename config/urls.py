from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from dispatcher import ops

admin.site.site_header = "CRM webhooks"
admin.site.site_title = "CRM webhooks"
admin.site.index_title = "Configuration and delivery logs"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("metrics", ops.metrics, name="metrics"),
    path("api/", include("dispatcher.urls")),
    path("api/", include("crm.urls")),
]
