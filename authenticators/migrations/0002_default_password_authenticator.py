from django.db import migrations


def create_password_authenticator(apps, schema_editor):
    Authenticator = apps.get_model("authenticators", "Authenticator")
    Authenticator.objects.get_or_create(
        name="password",
        defaults={"auth_type": "password", "title": "Password", "enabled": True, "sort_order": 0,
                  "options": {"allow_email": True, "allow_username": True}},
    )


def remove_password_authenticator(apps, schema_editor):
    apps.get_model("authenticators", "Authenticator").objects.filter(name="password", auth_type="password").delete()


class Migration(migrations.Migration):
    dependencies = [("authenticators", "0001_initial")]
    operations = [migrations.RunPython(create_password_authenticator, remove_password_authenticator)]
