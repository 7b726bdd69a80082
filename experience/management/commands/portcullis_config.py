"""``manage.py portcullis_config export`` / ``apply FILE|- [--check] [--prune]``: SPEC §5's document.

See docs/config-document.md."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experience import configuration


class Command(BaseCommand):
    help = "Export the configuration document as JSON, or validate and apply one (SPEC §5)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("export", help="Print the configuration as JSON (secret options as null).")
        apply = actions.add_parser("apply", help="Validate the whole document, then apply it in one transaction.")
        apply.add_argument("file", help="the JSON document, or - for standard input")
        apply.add_argument("--check", action="store_true", help="only validate; change nothing")
        apply.add_argument("--prune", action="store_true",
                           help="also remove the authenticators the document does not name")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            self.stdout.write(json.dumps(configuration.export(), indent=2, ensure_ascii=False))
            return
        document = self.read(options["file"])
        try:
            changes = configuration.apply(document, prune=options["prune"], check=options["check"])
        except configuration.DocumentInvalid as invalid:
            for path, message in invalid.problems:
                self.stderr.write(f"{path}: {message}")
            raise CommandError(f"{len(invalid.problems)} problem(s); nothing was changed.") from None
        if options["check"]:
            self.stdout.write("The document is valid; nothing was changed (--check).")
            return
        for line in changes.lines:
            self.stdout.write(line)
        self.stdout.write(f"Applied: {len(changes.lines)} change(s)." if changes else "Applied: nothing to change.")

    @staticmethod
    def read(name: str) -> Any:
        try:
            text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()  # noqa: SIM115
        except OSError as error:
            raise CommandError(f"{name}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{name}: not UTF-8 text") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"{name}: not JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
