"""Settings for the benchmark server only: the product's settings plus a URLconf with a bare view."""

from config.settings import *  # noqa: F401,F403

ROOT_URLCONF = "benchmarks.bench_urls"
