"""Static files of the standalone server: ``collectstatic`` writes hashed, compressed copies that
WhiteNoise serves with ``Cache-Control: max-age=315360000, public, immutable`` (a new release has new
names). Before any ``collectstatic`` (tests, a checkout) pages link the plain names."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFiles(CompressedManifestStaticFilesStorage):
    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest yet: nothing was collected
            return name
        return str(super().stored_name(name))
