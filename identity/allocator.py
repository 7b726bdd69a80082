"""Keep the password hash's working memory in the process between sign-ins.

Argon2id with Django's costs fills 100 MiB for every hash. glibc's ``malloc`` serves a block that
large with a fresh ``mmap`` and gives it back with ``munmap`` when the hash ends, so every sign-in
pays the kernel to map, fault in and zero 25,600 pages again: about a third of the hash's CPU on
this machine (docs/performance.md). Raising glibc's mmap and trim thresholds above the hash's
memory keeps the block in the main arena's heap, where the next hash reuses pages already mapped.
Every thread is sent to that arena (``M_ARENA_MAX`` 1): another arena's heap cannot hold a block
this large and would map it anew (the GIL serialises most of Python's calls to malloc anyway).

The cost is resident memory: a worker keeps the hash's block after its first sign-in instead of
returning to its idle size (its peak is the same). The block holds no secret between hashes:
libargon2 wipes its memory before freeing it. Threads that hash at the same moment (a threaded
worker) each keep a block.
Nothing happens off glibc, when the first password hasher is not Argon2, or with
``PORTCULLIS_RETAIN_HASH_MEMORY = False``.
"""

from __future__ import annotations

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MIB = 1024 * 1024
# glibc adapts its mmap threshold by itself up to 32 MiB on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX):
# a smaller hash block is already reused without help.
ADAPTIVE_LIMIT = 32 * MIB
C_INT_MAX = 2**31 - 1


def on_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")  # type: ignore[union-attr]
    except (ValueError, OSError, AttributeError):  # not a GNU system (musl, macOS, Windows)
        return False


def hash_memory_bytes() -> int:
    """The working memory of one hash with the project's preferred password hasher (0: not Argon2)."""
    from django.contrib.auth.hashers import Argon2PasswordHasher, get_hashers

    hasher = get_hashers()[0]
    if not isinstance(hasher, Argon2PasswordHasher):
        return 0
    return int(hasher.memory_cost) * 1024  # argon2's memory_cost is in KiB


def retain_hash_memory() -> bool:
    """Raise glibc's thresholds so that the hash's block stays mapped; True when they were set."""
    from identity.app_settings import setting

    if not setting("RETAIN_HASH_MEMORY", True) or not on_glibc():
        return False
    memory = hash_memory_bytes()
    if memory <= ADAPTIVE_LIMIT:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # a glibc without the usual soname: leave malloc as it is
        return False
    block = memory + MIB  # the hash's memory and libargon2's bookkeeping beside it
    if block > C_INT_MAX:  # mallopt takes an int: a hash this large is left to mmap
        return False
    if libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(block)) != 1:
        logger.warning("glibc refused an mmap threshold of %d bytes: each hash maps its memory anew", block)
        return False
    if libc.mallopt(M_ARENA_MAX, ctypes.c_int(1)) != 1:
        logger.warning("glibc refused one malloc arena: threads other than the main one map each hash anew")
    trim = min(2 * block, C_INT_MAX)
    if libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(trim)) != 1:
        logger.warning("glibc refused a trim threshold of %d bytes: each hash maps its memory anew", trim)
        return False
    return True
