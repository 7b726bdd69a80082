"""identity.allocator: with the product's real Argon2 costs (100 MiB a hash), a process's second
password check reuses the memory of the first instead of faulting 25,600 fresh pages in, and
``RETAIN_HASH_MEMORY=0`` leaves malloc as it was. Each case runs in a process of its own (the suite's
settings swap in a cheap hasher, and mallopt changes the whole process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.test import override_settings

from identity import allocator
from tests.servers import ROOT, base_env

glibc_only = pytest.mark.skipif(not allocator.on_glibc(), reason="the thresholds are glibc's malloc's")

PROBE = """
import json, resource
import django
django.setup()
from django.contrib.auth.hashers import check_password, make_password
import threading
encoded = make_password("correct horse battery staple")
faults = []
def check():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    assert check_password("correct horse battery staple", encoded)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
check()
thread = threading.Thread(target=check)  # a threaded worker's request thread
thread.start()
thread.join()
print(json.dumps(faults))
"""


def second_check_faults(retain: str, tmp_path) -> int:
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="1", SECRET_KEY="allocator-test",
                   PORTCULLIS_VAR_DIR=str(tmp_path), RETAIN_HASH_MEMORY=retain, LOG_LEVEL="WARNING")
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    return json.loads(probe.stdout.strip().splitlines()[-1])[1]


@glibc_only
def test_the_second_sign_in_of_a_worker_reuses_the_hash_memory(tmp_path):
    # 100 MiB are 25,600 pages: kept mapped, the second check (in another thread) touches almost none anew.
    assert second_check_faults("1", tmp_path) < 2_000


@glibc_only
def test_turned_off_each_hash_maps_its_memory_anew(tmp_path):
    assert second_check_faults("0", tmp_path) > 20_000


def test_a_hash_glibc_already_keeps_or_another_hasher_changes_nothing():
    # The suite's Argon2 (tests.hashers) uses a few KiB: glibc's adaptive threshold covers it.
    assert 0 < allocator.hash_memory_bytes() <= allocator.ADAPTIVE_LIMIT
    assert allocator.retain_hash_memory() is False
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"]):
        assert allocator.hash_memory_bytes() == 0
        assert allocator.retain_hash_memory() is False
