"""``portcullis-admin`` (or ``python -m config``): the standalone server's ``manage.py`` for an
installed package, where no ``manage.py`` file exists. Same commands, same settings (``config.settings``
unless ``DJANGO_SETTINGS_MODULE`` names others)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
