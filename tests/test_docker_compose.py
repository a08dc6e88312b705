"""docker-compose.yml cannot run here (no Docker engine), so check it against the code:
service names, every CALLSENSE_ variable is a real setting, every command is a real CLI command."""

from pathlib import Path

import click
import typer.main
import yaml

from callsense.cli import app
from callsense.core.settings import FLAT_NAMES

ROOT = Path(__file__).resolve().parents[1]


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_present():
    services = compose()["services"]
    assert {"kafka", "postgres", "worker", "dashboard"} <= set(services)
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper


def test_env_vars_are_settings_fields():
    fields = set(FLAT_NAMES)  # the CALLSENSE_* names of every setting, in any section
    for name, svc in compose()["services"].items():
        for key in (svc.get("environment") or {}):
            if key.startswith("CALLSENSE_"):
                assert key.removeprefix("CALLSENSE_").lower() in fields, f"{name}: {key} is not a setting"


def test_commands_parse_with_the_real_cli():
    root = typer.main.get_command(app)
    for name, svc in compose()["services"].items():
        if svc.get("image", "").startswith("callsense") or svc.get("build"):
            args = list(svc["command"])
            ctx = root.make_context("callsense", list(args), resilient_parsing=False)
            sub = root.get_command(ctx, args[0])
            assert sub is not None, f"{name}: unknown command {args[0]}"
            while isinstance(sub, click.Group):
                args = args[1:]
                sub = sub.get_command(ctx, args[0])
            sub.make_context(args[0], list(args[1:]))  # raises on unknown options


def test_workers_share_blob_volume_and_database():
    services = compose()["services"]
    env = services["worker"]["environment"]
    assert env["CALLSENSE_DATABASE_URL"].startswith("postgresql")
    assert "blobs:/blobs" in services["worker"]["volumes"] and env["CALLSENSE_BLOB_DIR"] == "/blobs"
    kafka_port = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].rsplit(":", 1)[1]
    assert env["CALLSENSE_KAFKA_BOOTSTRAP"] == f"kafka:{kafka_port}"


def test_riva_profile_serves_the_riva_port_to_the_workers():
    services = compose()["services"]
    riva = services["riva"]
    assert riva["profiles"] == ["riva"] and "50051:50051" in riva["ports"]
    assert riva["image"].startswith("nvcr.io/nvidia/riva/riva-speech")
    env = services["worker"]["environment"]
    assert env["CALLSENSE_RIVA_URL"].endswith("riva:50051}") or env["CALLSENSE_RIVA_URL"] == "riva:50051"
