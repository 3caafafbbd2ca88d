"""Settings: every one documented, parsed from the environment, bad values named."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from realtime_server.base.settings import (
    Settings,
    SettingsError,
    env_name,
    load_settings,
    resolve_jwt_secret,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme_with_its_default():
    text = README.read_text()
    for f in fields(Settings):
        assert f"| `{env_name(f.name)}` |" in text, f"{env_name(f.name)} missing from README"


def test_environment_values_are_parsed_to_their_types():
    s = load_settings({"PORT": "9001", "HEARTBEAT_INTERVAL": "2.5", "HOST": "0.0.0.0"}, dotenv=None)
    assert (s.port, s.heartbeat_interval, s.host) == (9001, 2.5, "0.0.0.0")


def test_a_dotenv_file_fills_in_what_the_environment_does_not_set(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=7000\nLOG_LEVEL=DEBUG\n")
    s = load_settings({"PORT": "7001"}, dotenv=str(env_file))
    assert s.port == 7001
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"SQLITE_SYNCHRONOUS": "SOMETIMES"}, "SQLITE_SYNCHRONOUS"),
        ({"MAX_FRAME_BYTES": "0"}, "MAX_FRAME_BYTES"),
    ],
)
def test_a_bad_value_is_refused_with_the_setting_named(env: dict[str, str], name: str):
    with pytest.raises(SettingsError, match=name):
        load_settings(env, dotenv=None)


def test_an_empty_jwt_secret_is_generated_once_and_kept(tmp_path: Path):
    s = Settings(data_dir=str(tmp_path))
    first = resolve_jwt_secret(s).jwt_secret
    assert len(first) >= 32
    assert resolve_jwt_secret(s).jwt_secret == first
    assert resolve_jwt_secret(s.replace(jwt_secret="given" * 8)).jwt_secret == "given" * 8
