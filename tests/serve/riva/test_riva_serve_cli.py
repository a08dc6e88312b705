"""riva-serve refuses to listen beyond this machine without TLS and an API key, and checks
its port; both before any model is loaded."""

from typer.testing import CliRunner

from callsense.cli import app
from callsense.serve.riva.cli import is_loopback


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.1.2.3", "example.org", "::"))


def test_a_public_address_without_tls_or_key_is_refused():
    out = CliRunner().invoke(app, ["riva-serve", "--host", "0.0.0.0", "--port", "0"])
    assert out.exit_code == 1
    assert "refusing to serve on 0.0.0.0 without TLS" in out.output and "--insecure" in out.output
    assert "Traceback" not in out.output


def test_a_port_out_of_range_is_refused():
    out = CliRunner().invoke(app, ["riva-serve", "--port", "99999"])
    assert out.exit_code == 2 and "--port" in out.output and "65535" in out.output
