"""Riva fixtures for the tests in this folder."""

from riva_fixtures import *  # noqa: F401,F403  (fixtures)
