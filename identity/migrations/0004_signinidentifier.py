"""The index of every sign-in identifier, filled from the existing accounts.

Accounts that already share an identifier (``Dave`` and ``dave``, an e-mail equal to another
account's username) do not make it fail: their rows are kept, marked ``duplicate``, and signing in
by that identifier is refused until an admin gives it to one account only."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def index_existing_accounts(apps, schema_editor):
    from django.contrib.auth import get_user_model

    from identity.identifiers import EMAIL, USERNAME, index_rows, read_identifiers

    db = schema_editor.connection.alias
    User = apps.get_model(settings.AUTH_USER_MODEL)
    Profile = apps.get_model("identity", "Profile")
    SignInIdentifier = apps.get_model("identity", "SignInIdentifier")
    live = get_user_model()  # only for the names of its username and e-mail fields
    names = {field.name for field in User._meta.concrete_fields}
    fields = {USERNAME: live.USERNAME_FIELD}
    if live.get_email_field_name() in names:
        fields[EMAIL] = live.get_email_field_name()
    rows = index_rows(read_identifiers(User, Profile, fields, db))
    SignInIdentifier.objects.using(db).bulk_create(
        [SignInIdentifier(user_id=user_id, key=key, kinds=kinds, duplicate=duplicate)
         for user_id, key, kinds, duplicate in rows],
        batch_size=1000,
    )


class Migration(migrations.Migration):

    dependencies = [
        ("identity", "0003_profile_subject_unique"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SignInIdentifier",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=1000, verbose_name="comparison key")),
                ("kinds", models.CharField(help_text="email, username or phone, comma-separated", max_length=40, verbose_name="kinds")),
                ("duplicate", models.BooleanField(default=False, help_text="Legacy data: sign-in by this identifier is refused until only one account holds it.", verbose_name="held by several accounts")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="portcullis_identifiers", to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "verbose_name": "sign-in identifier",
                "verbose_name_plural": "sign-in identifiers",
                "constraints": [
                    models.UniqueConstraint(condition=models.Q(("duplicate", False)), fields=("key",), name="identity_identifier_one_account"),
                    models.UniqueConstraint(fields=("key", "user"), name="identity_identifier_once_per_user"),
                ],
            },
        ),
        migrations.RunPython(index_existing_accounts, migrations.RunPython.noop),
    ]
