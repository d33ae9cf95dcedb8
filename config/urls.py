from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

# A URL no route matches is a 404 in the API's error shape under /api/ (an HTML page elsewhere).
handler404 = "loyalty.api.errors.not_found_view"

admin.site.site_header = "Loyalty & promotions back office"
admin.site.site_title = "Loyalty back office"
admin.site.index_title = "Operations"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
