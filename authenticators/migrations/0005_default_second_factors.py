from django.db import migrations

SECOND_FACTORS = [
    ("totp", "Authenticator app", 100),
    ("backup_code", "Backup code", 101),
    ("email_code", "Code by e-mail", 102),
]


def create_second_factors(apps, schema_editor):
    Authenticator = apps.get_model("authenticators", "Authenticator")
    for name, title, order in SECOND_FACTORS:
        Authenticator.objects.get_or_create(
            name=name, defaults={"auth_type": name, "title": title, "enabled": True, "sort_order": order, "options": {}})


def remove_second_factors(apps, schema_editor):
    Authenticator = apps.get_model("authenticators", "Authenticator")
    for name, _title, _order in SECOND_FACTORS:
        Authenticator.objects.filter(name=name, auth_type=name).delete()


class Migration(migrations.Migration):
    dependencies = [("authenticators", "0004_backup_codes_and_factor_state")]
    operations = [migrations.RunPython(create_second_factors, remove_second_factors)]
