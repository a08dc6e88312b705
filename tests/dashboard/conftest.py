"""Fixtures of the dashboard tests: a seeded store and an empty one (helpers in dash_support.py)."""

from __future__ import annotations

import pytest

from dash_support import REPO, DashStore, add_sample_call, add_users, make_dash_store
from callsense.dashboard import demo


@pytest.fixture
def seeded(tmp_path) -> DashStore:
    """Sixty days of scripted calls for agents ag-1..ag-4, the sample call, four users."""
    ds = make_dash_store(tmp_path / "data")
    demo.seed_history(ds.store, days=60, calls_per_day=1)
    ds.sample_call_id = add_sample_call(ds, REPO / "samples" / "late-delivery.mp3")
    add_users(ds.engine)
    return ds


@pytest.fixture
def empty_store(tmp_path) -> DashStore:
    ds = make_dash_store(tmp_path / "empty")
    add_users(ds.engine)
    return ds
