"""The test suite's password hasher: Argon2id with the lowest cost.

Production hashes with Django's Argon2PasswordHasher (config.settings; ~100 ms a hash here, by design).
The suite creates and signs in thousands of accounts, so it swaps in this subclass (tests/conftest.py):
the same algorithm, the same ``argon2$argon2id$`` encoding and the same code path (encode, verify and
the dummy hash for unknown accounts are the base class's), at about a millisecond. What the production
settings choose is tested against config.settings itself (test_sign_in_attacks).
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 64  # KiB
    parallelism = 1
