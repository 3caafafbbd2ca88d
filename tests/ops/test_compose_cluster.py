"""deploy/compose.cluster.yaml and deploy/haproxy.cfg: three nodes behind HAProxy.

No container engine runs in CI: the compose file is checked against the
Compose specification's JSON schema (as compose.yaml is, test_container.py),
and the HAProxy configuration is read for what a WebSocket deployment needs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NODES = ("node1", "node2", "node3")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.cluster.yaml").read_text())
    return data


def _haproxy() -> dict[str, list[str]]:
    """Section header -> its lines, comments and blank lines left out."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in (ROOT / "deploy" / "haproxy.cfg").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not raw[0].isspace():
            current = sections.setdefault(line, [])
        else:
            current.append(" ".join(line.split()))
    return sections


def _seconds(value: str) -> float:
    """An HAProxy time: a bare number is milliseconds."""
    found = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert found, f"not an HAProxy time: {value!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 0.001}[found[2]]
    return int(found[1]) * scale


def test_the_cluster_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((HERE / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []


def test_three_nodes_share_postgres_redis_one_secret_and_the_media() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", *NODES, "haproxy"}
    ids = set()
    for name in NODES:
        node = services[name]
        env = node["environment"]
        assert node["build"] == ".."
        assert node["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
        url = env["DATABASE_URL"]
        assert url.startswith("postgresql://") and url.endswith("@postgres:5432/realtime")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["JWT_SECRET"].startswith("${JWT_SECRET:?")  # required, one for all
        assert "data:/data" in node["volumes"]
        ids.add(env["NODE_ID"])
    assert ids == set(NODES)
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]


def test_haproxy_is_the_only_trusted_proxy_and_publishes_the_port() -> None:
    services = _compose()["services"]
    proxy = services["haproxy"]
    address = proxy["networks"]["cluster"]["ipv4_address"]
    for name in NODES:
        assert services[name]["environment"]["TRUSTED_PROXIES"] == address
    assert proxy["volumes"] == ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    assert proxy["ports"] == ["${PORT:-8000}:8000"]
    assert set(proxy["depends_on"]) == set(NODES)


def test_haproxy_balances_the_three_nodes_with_health_checks() -> None:
    sections = _haproxy()
    frontend = sections["frontend public"]
    assert "bind :8000" in frontend
    assert "acl is_ws path /ws" in frontend
    assert "acl is_upgrade hdr(Upgrade) -i websocket" in frontend
    assert "use_backend sockets if is_ws is_upgrade" in frontend
    assert "default_backend rest" in frontend
    for backend in ("backend rest", "backend sockets"):
        lines = sections[backend]
        servers = [line.split()[1:3] for line in lines if line.startswith("server ")]
        assert servers == [[name, f"{name}:8000"] for name in NODES]
        assert all(line.endswith(" check") for line in lines if line.startswith("server "))
        assert "option httpchk" in lines
        assert any(line.startswith("http-check send meth GET uri /health ") for line in lines)
        assert "http-check expect status 200" in lines
    assert "balance leastconn" in sections["backend sockets"]


def test_haproxy_keeps_websockets_open_and_retries_a_stopping_node() -> None:
    defaults = _haproxy()["defaults"]
    timeouts = {
        line.split()[1]: _seconds(line.split()[2])
        for line in defaults
        if line.startswith("timeout ")
    }
    # An upgraded socket idles up to the tunnel timeout: far beyond the nodes'
    # 20 s heartbeat, so only a dead peer is cut.
    assert timeouts["tunnel"] >= 3600
    assert timeouts["client-fin"] >= 10 and timeouts["server-fin"] >= 10
    assert timeouts["client"] >= 30 and timeouts["server"] >= 30
    assert "option forwardfor" in defaults
    assert "option redispatch 1" in defaults and "retries 3" in defaults
