"""PostgreSQL for the standalone server (``ENGINE = "config.postgresql"``): Django's backend with a
health check that needs no round trip (:mod:`config.postgresql.base`)."""
