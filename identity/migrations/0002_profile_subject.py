"""Every user gets a random subject identifier (``sub``), and a profile to hold it when they had none.

Three steps in two migrations: the column is added empty and filled here; 0003 makes it unique and
required (PostgreSQL refuses to alter a table in the transaction that has just written its rows)."""

from django.conf import settings
from django.db import migrations, models

BATCH = 500


def give_every_user_a_subject(apps, schema_editor):
    from identity.models import new_subject

    db = schema_editor.connection.alias
    User = apps.get_model(settings.AUTH_USER_MODEL)
    Profile = apps.get_model("identity", "Profile")
    pending = []
    for profile in Profile.objects.using(db).filter(subject__isnull=True).only("pk").iterator():
        profile.subject = new_subject()
        pending.append(profile)
        if len(pending) >= BATCH:
            Profile.objects.using(db).bulk_update(pending, ["subject"])
            pending = []
    Profile.objects.using(db).bulk_update(pending, ["subject"])
    with_profile = Profile.objects.using(db).values("user_id")
    missing = User.objects.using(db).exclude(pk__in=with_profile).values_list("pk", flat=True)
    Profile.objects.using(db).bulk_create(
        [Profile(user_id=pk, subject=new_subject()) for pk in missing.iterator()], batch_size=BATCH
    )


class Migration(migrations.Migration):

    dependencies = [
        ("identity", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="profile",
            name="subject",
            field=models.CharField(editable=False, max_length=64, null=True, verbose_name="subject identifier"),
        ),
        migrations.RunPython(give_every_user_a_subject, migrations.RunPython.noop),
    ]
