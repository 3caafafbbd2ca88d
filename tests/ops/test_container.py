"""The container image and compose file: valid, non-root, healthy when ready, cached well.

No container engine runs in CI, so what an engine would check is checked here
directly: compose.yaml against the Compose specification's JSON schema
(tests/ops/compose-spec.json, see COMPOSE-SPEC-LICENSE.md beside it), the
Dockerfile's stages and layer order, and its HEALTHCHECK command run for real
against a node.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import trio
import yaml

from realtime_server.node import Node

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split into stages."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((HERE / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []


def test_the_schema_check_would_catch_a_broken_compose_file() -> None:
    schema = json.loads((HERE / "compose-spec.json").read_text())
    broken = _compose()
    broken["services"]["server"]["depends_on"] = {"postgres": {"condition": "when_ready"}}
    broken["services"]["server"]["helthcheck"] = {"test": ["CMD", "true"]}
    assert len(list(jsonschema.Draft201909Validator(schema).iter_errors(broken))) == 2


def test_compose_runs_the_server_on_postgres_once_postgres_is_healthy() -> None:
    services = _compose()["services"]
    server, postgres = services["server"], services["postgres"]
    assert server["build"] == "."
    assert server["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    url = server["environment"]["DATABASE_URL"]
    assert url.startswith("postgresql://realtime:") and url.endswith("@postgres:5432/realtime")
    assert server["environment"]["LOG_FORMAT"] == "json"
    assert any(v.endswith(":/data") for v in server["volumes"])


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    stages = _stages()
    assert len(stages) == 2
    runtime = stages[-1]
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert any("useradd --system" in line for line in runtime)
    # Only the built virtualenv reaches the runtime image.
    copies = [line for line in runtime if line.upper().startswith("COPY ")]
    assert copies == ["COPY --from=build /venv /venv"]


def test_dependencies_come_from_the_lock_in_a_layer_before_the_code() -> None:
    build = _stages()[0]
    install = next(i for i, line in enumerate(build) if "pip install -c requirements.lock" in line)
    lock_copy = next(i for i, line in enumerate(build) if "requirements.lock" in line)
    assert build[lock_copy].startswith("COPY ") and lock_copy < install
    copied = {line.split()[1] for line in build if line.startswith("COPY ")}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    for pattern in packages:
        name = pattern.rstrip("*")
        assert name in copied, f"{name} is not copied into the image"
        code_copy = next(i for i, line in enumerate(build) if line.startswith(f"COPY {name} "))
        assert code_copy > install, f"{name} is copied before the dependencies are installed"


def test_the_dependency_layer_installs_exactly_the_runtime_dependencies(tmp_path: Path) -> None:
    build = _stages()[0]
    run = next(line for line in build if "tomllib" in line)
    command = run.removeprefix("RUN ").split("&&")[0].strip()
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    argv = shlex.split(command.replace(" > runtime.txt", ""))
    argv[0] = sys.executable
    listed = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True)
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert listed.stdout.split("\n")[:-1] == wanted
    assert not any(re.match(r"(pytest|mypy|ruff)\b", d) for d in listed.stdout.split())


def _healthcheck() -> list[str]:
    runtime = _stages()[-1]
    line = next(line for line in runtime if line.upper().startswith("HEALTHCHECK "))
    command: list[str] = json.loads(line[line.index("CMD ") + 4 :])
    return command


async def test_the_healthcheck_passes_on_a_ready_node_and_fails_on_a_silent_port(
    node: Node,
) -> None:
    command = _healthcheck()
    assert command[0] == "python" and "/ready" in command[-1]
    argv = [sys.executable, *command[1:]]
    with trio.fail_after(30):
        ready = await trio.run_process(
            argv, env={**os.environ, "PORT": str(node.port)}, capture_stderr=True, check=False
        )
        assert ready.returncode == 0, ready.stderr
        silent = await trio.run_process(
            argv, env={**os.environ, "PORT": "1"}, capture_stderr=True, check=False
        )
        assert silent.returncode != 0
