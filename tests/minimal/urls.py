from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("id/", include("identity.urls")),
    path("id/", include("experience.urls")),
]
