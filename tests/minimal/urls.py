from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """A page of the host project that needs a signed-in user."""
    return HttpResponse(f"hello {request.user.get_username()}")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("account/", account),
    path("id/", include("identity.urls")),
    path("id/", include("experience.urls")),
]
