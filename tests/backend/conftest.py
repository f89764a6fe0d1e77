"""Fixtures of the web shell's tests."""

from __future__ import annotations

import pytest

from backend.web.settings import Settings
from tests.apptools import db_url_of, make_settings


@pytest.fixture
def settings(db_engine, tmp_path) -> Settings:
    """The app's settings on the test database (SQLite and PostgreSQL), files under tmp_path."""
    return make_settings(db_url_of(db_engine), data_dir=tmp_path / "data")
