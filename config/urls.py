from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from loyalty.insight.views import dashboard_view
from loyalty.kernel.api import has_perms

# A URL no route matches is a 404 in the API's error shape under /api/ (an HTML page elsewhere).
handler404 = "loyalty.api.errors.not_found_view"

admin.site.site_header = "Loyalty & promotions back office"
admin.site.site_title = "Loyalty back office"
admin.site.index_title = "Operations"
admin.site.site_url = None  # no public site: no "View site" link to a 404

SCHEMA_READERS = has_perms("loyalty.view_api_schema")

urlpatterns = [
    # Before the admin's own URLs (its app-list pattern would otherwise answer /admin/dashboard/).
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="insight-dashboard"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    # The schema and the docs are for the Auditor and Integration roles (and superusers).
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[SCHEMA_READERS]), name="schema"),
    path(
        "api/docs/",
        # The split view serves its start-up script as a file (?script), not inline: CSP-friendly.
        SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[SCHEMA_READERS]),
        name="api-docs",
    ),
]
