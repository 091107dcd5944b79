"""The commands from an installed wheel, run in a directory outside the repository: what they
need (dashboards, provisioning files, the demo's training data) ships inside the package.

The wheel is built from a copy of exactly what the Dockerfile copies (pyproject.toml, README.md,
monitor/), so a file the commands need elsewhere in the repository is missed here as it would be
in the image. It is installed without dependencies into a fresh virtualenv that sees this
environment's third-party packages (no download), never this checkout.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from monitor.dashboards.files import DASHBOARD_DIR

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh virtualenv holding the wheel of this tree."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "monitor", source / "monitor",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(base / "dist"), str(source)], check=True, timeout=300)
    (wheel,) = (base / "dist").glob("drift_monitor-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # Third-party packages from this environment, after the venv's own site-packages; its .pth
    # files (the editable install of this checkout among them) are not processed from there.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    return venv / "bin"


def run(bin_dir: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFT_MONITOR_", "GRAFANA"))}
    return subprocess.run([str(bin_dir / "drift-monitor"), *args], cwd=cwd, text=True,
                          capture_output=True, timeout=180, env={**environ, **env})


def test_the_installed_package_is_not_this_checkout(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "python"), "-c", "import monitor.dashboards.files as f;"
                            " print(f.DASHBOARD_DIR)"], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(installed.parent) and Path(where).is_dir()
    shipped = sorted(p.name for p in Path(where).rglob("*") if p.is_file())
    assert shipped == sorted(p.name for p in DASHBOARD_DIR.rglob("*") if p.is_file())


class _Grafana(http.server.BaseHTTPRequestHandler):
    """Answers as Grafana's HTTP API does to `dashboards push --datasource`, recording requests."""

    requests: list[tuple[str, str, str, Any]] = []

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, self.headers.get("Authorization", ""),
                              payload))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._answer(404, {"message": "Data source not found"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._answer(200, {"status": "success", "id": 1, "uid": "x"})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def grafana() -> Iterator[tuple[str, list[tuple[str, str, str, Any]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Grafana)
    _Grafana.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Grafana.requests
    server.shutdown()
    server.server_close()


def test_dashboards_push_from_the_wheel_sends_the_shipped_dashboards_and_datasource(
    installed: Path, tmp_path: Path, grafana: tuple[str, list[Any]]
) -> None:
    url, requests = grafana
    token_file = tmp_path / "token"
    token_file.write_text("glsa_from_a_file\n")
    proc = run(installed, ["dashboards", "push", "--url", url, "--token-file", str(token_file),
                           "--datasource"], tmp_path, INFLUX_TOKEN="influx-secret")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["pushed", "drift-model", "pushed", "drift-overview",
                                   "pushed", "drift-service"]
    posted = {body["dashboard"]["uid"]: body for method, path, _, body in requests
              if (method, path) == ("POST", "/api/dashboards/db")}
    assert set(posted) == {"drift-model", "drift-overview", "drift-service"}
    assert all(body["overwrite"] and body["dashboard"]["panels"] for body in posted.values())
    (source,) = [body for method, path, _, body in requests
                 if (method, path) == ("POST", "/api/datasources")]
    assert source["uid"] == "drift-influxdb"
    assert source["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret"}
    assert {auth for _, _, auth, _ in requests} == {"Bearer glsa_from_a_file"}


def test_dashboards_push_takes_the_token_from_the_environment_and_refuses_it_as_an_argument(
    installed: Path, tmp_path: Path, grafana: tuple[str, list[Any]]
) -> None:
    url, requests = grafana
    proc = run(installed, ["dashboards", "push", "--url", url], tmp_path, GRAFANA_TOKEN="glsa_env")
    assert proc.returncode == 0, proc.stderr
    assert {auth for _, _, auth, _ in requests} == {"Bearer glsa_env"}
    refused = run(installed, ["dashboards", "push", "--url", url, "--token", "glsa_argv"], tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: a token on the command line shows in `ps`")
    assert "glsa_argv" not in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_demo_produce_from_the_wheel_builds_the_profile_from_shipped_data(
    services: None, installed: Path, tmp_path: Path
) -> None:
    topic = f"wheel-demo-{uuid.uuid4().hex[:8]}"
    proc = run(installed, ["demo", "produce", "--windows", "1", "--rate", "20"], tmp_path,
               DRIFT_MONITOR_PREDICTIONS_TOPIC=topic, DRIFT_MONITOR_BROKER="127.0.0.1:9092",
               DRIFT_MONITOR_PROFILES=str(tmp_path / "profiles"))
    assert proc.returncode == 0, proc.stderr
    profile = json.loads((tmp_path / "profiles" / "churn-3.json").read_text())
    assert profile["source"]["rows"] == 10_000
    assert (tmp_path / "profiles" / "churn-3.json").read_bytes() == (
        ROOT / "profiles" / "churn-3.json").read_bytes()
    consumer = KafkaConsumer(topic, bootstrap_servers=["127.0.0.1:9092"], group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    assert sum(1 for _ in consumer) == 100
    consumer.close()
