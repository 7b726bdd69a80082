from django.db import migrations

CODE_AUTHENTICATORS = [
    # Codes by e-mail need only Django's e-mail backend: on by default.
    {"name": "email-code", "auth_type": "email-code", "title": "E-mail code", "enabled": True, "sort_order": 10},
    # Codes by SMS need a provider (PORTCULLIS_SMS_BACKEND): an admin turns it on.
    {"name": "sms-code", "auth_type": "sms-code", "title": "SMS code", "enabled": False, "sort_order": 20},
]


def create_code_authenticators(apps, schema_editor):
    Authenticator = apps.get_model("authenticators", "Authenticator")
    for values in CODE_AUTHENTICATORS:
        Authenticator.objects.get_or_create(name=values["name"], defaults={**values, "options": {}})


def remove_code_authenticators(apps, schema_editor):
    Authenticator = apps.get_model("authenticators", "Authenticator")
    for values in CODE_AUTHENTICATORS:
        Authenticator.objects.filter(name=values["name"], auth_type=values["auth_type"]).delete()


class Migration(migrations.Migration):
    dependencies = [("authenticators", "0006_one_time_code_account")]
    operations = [migrations.RunPython(create_code_authenticators, remove_code_authenticators)]
