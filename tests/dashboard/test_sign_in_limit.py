"""Sign-in attempts are limited per user name and per client address (dashboard/auth.py)."""

from streamlit.testing.v1 import AppTest

from callsense.dashboard.auth import SignInLimiter

from dash_support import PASSWORDS
from test_pages import APP, TIMEOUT, sign_in


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_user_is_locked_out_after_repeated_failures_then_let_in_again():
    clock = FakeClock()
    limiter = SignInLimiter(per_user=3, per_address=5, window_s=60, clock=clock)
    for _ in range(3):
        assert limiter.locked_for("Maria", "10.0.0.1") == 0
        limiter.failed("maria ", "10.0.0.1")
    assert 0 < limiter.locked_for("MARIA", "10.0.0.9") <= 60  # the user, from any address
    assert limiter.locked_for("rita", "10.0.0.2") == 0
    clock.now += 61
    assert limiter.locked_for("maria", "10.0.0.1") == 0


def test_an_address_is_locked_out_across_user_names():
    limiter = SignInLimiter(per_user=100, per_address=4, window_s=60, clock=FakeClock())
    for name in ("a", "b", "c", "d"):
        limiter.failed(name, "10.0.0.7")
    assert limiter.locked_for("e", "10.0.0.7") > 0
    assert limiter.locked_for("e", "10.0.0.8") == 0
    assert limiter.locked_for("e", None) == 0  # an unknown address is not one shared address


def test_success_clears_the_user_count():
    limiter = SignInLimiter(per_user=2, per_address=100, window_s=60, clock=FakeClock())
    limiter.failed("rita", None)
    limiter.succeeded("rita")
    limiter.failed("rita", None)
    assert limiter.locked_for("rita", None) == 0


def test_the_sign_in_page_says_so_after_too_many_failures(seeded, monkeypatch):
    from callsense.dashboard.app import sign_in_limiter

    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(seeded.settings.data_dir))
    monkeypatch.delenv("CALLSENSE_DATABASE_URL", raising=False)
    sign_in_limiter.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        for _ in range(5):
            sign_in(at, "rita", "wrong")
            assert [e.value for e in at.error] == ["Wrong user name or password."]
        sign_in(at, "rita", PASSWORDS["rita"])  # the right password no longer helps, for now
        assert len(at.error) == 1 and at.error[0].value.startswith("Too many failed sign-ins.")
        assert not any("Sign out" == b.label for b in at.sidebar.button)
    finally:
        sign_in_limiter.clear()
