"""Fixtures of the security tests (see `bench`)."""

from tests.security.bench import settings, world

__all__ = ["settings", "world"]
