from django.urls import path

from config import demo

app_name = "demo"

urlpatterns = [
    path("", demo.index, name="index"),
    path("login", demo.login, name="login"),
    path("callback", demo.callback, name="callback"),
    path("logout", demo.logout, name="logout"),
]
