from django.db import migrations, models

import identity.models


class Migration(migrations.Migration):

    dependencies = [
        ("identity", "0002_profile_subject"),
    ]

    operations = [
        migrations.AlterField(
            model_name="profile",
            name="subject",
            field=models.CharField(
                default=identity.models.new_subject,
                editable=False,
                help_text="The user's “sub” in ID tokens, userinfo and introspection: random, stable, never reused.",
                max_length=64,
                unique=True,
                verbose_name="subject identifier",
            ),
        ),
    ]
