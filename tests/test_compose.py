"""docker-compose.yml and the Dockerfile: the production-like stack, checked without Docker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]

WORKER_ENVIRONMENT = (
    "DRIFT_MONITOR_BROKER",
    "DRIFT_MONITOR_PROFILES",
    "DRIFT_MONITOR_WINDOW_SECONDS",
    "DRIFT_MONITOR_GRACE_SECONDS",
    "DRIFT_MONITOR_PREDICTIONS_TOPIC",
    "DRIFT_MONITOR_ALERTS_TOPIC",
    "DRIFT_MONITOR_DLQ_TOPIC",
    "DRIFT_MONITOR_INFLUX_URL",
    "DRIFT_MONITOR_INFLUX_TOKEN",
    "DRIFT_MONITOR_INFLUX_ORG",
    "DRIFT_MONITOR_INFLUX_BUCKET",
)
# Bind mounts of user data, not of files the repository provides.
USER_DATA_MOUNTS: set[str] = set()  # profiles/ is in the repository (the demo profile)


def environment(service: str) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or KEY=VALUE list."""
    env = SERVICES[service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def bind_mounts(service: str) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (named volumes left out)."""
    mounts = []
    for volume in SERVICES[service].get("volumes", []):
        source, target = (
            (volume["source"], volume["target"])
            if isinstance(volume, dict)
            else (
                volume.split(":")[0],
                volume.split(":")[1],
            )
        )
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_stack_has_kafka_influxdb_grafana_worker_alerting_and_a_demo_producer() -> None:
    assert set(SERVICES) == {"kafka", "influxdb", "grafana", "worker", "alertmanager",
                             "alert-forwarder", "demo-producer"}
    assert SERVICES["demo-producer"]["profiles"] == ["demo"]
    assert all("profiles" not in SERVICES[name] for name in set(SERVICES) - {"demo-producer"})


def test_images_are_pinned_to_the_supported_major_versions() -> None:
    assert SERVICES["kafka"]["image"] == "apache/kafka:4.1.1"
    assert SERVICES["influxdb"]["image"] == "influxdb:2.7"
    assert re.fullmatch(r"grafana/grafana:11\.\d+\.\d+", SERVICES["grafana"]["image"])
    assert re.fullmatch(r"prom/alertmanager:v0\.\d+\.\d+", SERVICES["alertmanager"]["image"])


def test_kafka_runs_a_single_kraft_node() -> None:
    env = environment("kafka")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_influxdb_is_set_up_with_the_drift_org_bucket_and_a_dbrp_script() -> None:
    env = environment("influxdb")
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] == "drift"
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == "drift"
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert ("./deploy/influxdb", "/docker-entrypoint-initdb.d") in bind_mounts("influxdb")
    script = (ROOT / "deploy" / "influxdb" / "create-dbrp.sh").read_text()
    assert "influx v1 dbrp create" in script and "--db drift" in script
    assert "--rp autogen" in script and "--bucket-id" in script


@pytest.mark.parametrize(
    ("service", "port"),
    [("kafka", "29092"), ("influxdb", "8086"), ("grafana", "3000"), ("alertmanager", "9095"),
     ("worker", "6066")],
)
def test_service_publishes_its_port(service: str, port: str) -> None:
    published = [str(p).split(":")[0] for p in SERVICES[service]["ports"]]
    assert port in published


def test_grafana_mounts_the_provisioning_and_dashboards_the_files_point_to() -> None:
    mounts = dict(bind_mounts("grafana"))
    shipped = "./monitor/dashboards/grafana"  # the package data `dashboards push` reads too
    assert mounts[shipped] == "/var/lib/grafana/dashboards"
    assert mounts[f"{shipped}/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts[f"{shipped}/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    provider = yaml.safe_load((ROOT / shipped / "provisioning/dashboards/drift.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts[shipped]
    assert (ROOT / shipped / "overview.json").exists()


def test_grafana_gets_the_variables_its_datasource_provisioning_expands() -> None:
    text = (ROOT / "monitor/dashboards/grafana/provisioning/datasources/drift.yaml").read_text()
    settings = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    needed = set(re.findall(r"\$\{?(\w+)", "\n".join(settings)))
    assert needed == {"INFLUX_URL", "INFLUX_TOKEN"}
    assert needed <= set(environment("grafana"))
    assert environment("grafana")["INFLUX_URL"] == "${INFLUX_URL:-http://influxdb:8086}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_bind_mounted_repository_path_exists(service: str) -> None:
    for source, _ in bind_mounts(service):
        if source not in USER_DATA_MOUNTS:
            assert (ROOT / source).exists(), f"{service} mounts missing {source}"


@pytest.mark.parametrize("service", ["worker", "alert-forwarder", "demo-producer"])
def test_service_sets_every_variable_the_worker_reads(service: str) -> None:
    env = environment(service)
    assert [name for name in WORKER_ENVIRONMENT if not env.get(name)] == []
    assert env["DRIFT_MONITOR_INFLUX_URL"] == "http://influxdb:8086"
    assert env["DRIFT_MONITOR_BROKER"].endswith("kafka:9092")


def test_worker_token_is_the_influxdb_admin_token() -> None:
    assert (
        environment("worker")["DRIFT_MONITOR_INFLUX_TOKEN"]
        == environment("influxdb")["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
        == environment("grafana")["INFLUX_TOKEN"]
    )


def test_worker_mounts_profiles_and_runs_the_worker_command() -> None:
    worker = SERVICES["worker"]
    assert worker["build"] == "."
    assert worker["command"] == ["drift-monitor", "worker"]
    assert ("./profiles", environment("worker")["DRIFT_MONITOR_PROFILES"]) in bind_mounts("worker")
    assert SERVICES["demo-producer"]["command"] == ["drift-monitor", "demo", "produce"]


def test_services_wait_for_healthy_dependencies() -> None:
    for name in ("kafka", "influxdb", "grafana", "alertmanager"):
        assert SERVICES[name]["healthcheck"]["test"], name
    assert SERVICES["worker"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "influxdb": {"condition": "service_healthy"},
    }
    assert SERVICES["grafana"]["depends_on"]["influxdb"] == {"condition": "service_healthy"}
    assert SERVICES["demo-producer"]["depends_on"]["kafka"] == {"condition": "service_healthy"}


def test_the_worker_healthcheck_asks_ready_on_the_port_the_worker_listens_on() -> None:
    """urlopen raises on a 503, so the check fails while the worker is not ready."""
    port = environment("worker")["DRIFT_MONITOR_HTTP_PORT"]
    published = [str(p).split(":") for p in SERVICES["worker"]["ports"]]
    assert [port, port] in published
    test = SERVICES["worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"'http://localhost:{port}/ready'" in test[3] and "urlopen" in test[3]


def test_dockerfile_builds_on_python_311_slim_and_runs_the_worker() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert re.search(r"pip install \.(\s|$)", dockerfile)
    assert 'CMD ["drift-monitor", "worker"]' in dockerfile.splitlines()


def test_the_forwarder_posts_the_alert_topic_to_the_stacks_alertmanager() -> None:
    forwarder, alertmanager = SERVICES["alert-forwarder"], SERVICES["alertmanager"]
    command = forwarder["command"]
    assert command[:3] == ["drift-monitor", "alerts", "forward"]
    url = command[command.index("--alertmanager") + 1]
    container_port = str(alertmanager["ports"][0]).split(":")[1]
    assert url == f"http://alertmanager:{container_port}"
    listen = next((c.split("=", 1)[1] for c in alertmanager["command"]
                   if c.startswith("--web.listen-address=")), ":9093")  # the image's default
    assert listen.rsplit(":", 1)[1] == container_port
    assert forwarder["depends_on"]["alertmanager"] == {"condition": "service_healthy"}
    assert forwarder["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert environment("alert-forwarder")["DRIFT_MONITOR_ALERTS_TOPIC"] == environment(
        "worker")["DRIFT_MONITOR_ALERTS_TOPIC"]


def test_alertmanager_runs_alone_with_the_config_it_mounts() -> None:
    command = SERVICES["alertmanager"]["command"]
    assert "--cluster.listen-address=" in command
    config_flag = next(c for c in command if c.startswith("--config.file="))
    mounts = {target: source for source, target in bind_mounts("alertmanager")}
    assert config_flag.split("=", 1)[1] in mounts


@pytest.mark.integration
def test_the_stacks_alertmanager_config_is_valid_for_alertmanager(services: None) -> None:
    """amtool (installed with Debian's prometheus-alertmanager by `make services`)."""
    import subprocess

    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    result = subprocess.run(["amtool", "check-config", str(config)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    routed = yaml.safe_load(config.read_text())
    receivers = {r["name"] for r in routed["receivers"]}
    assert routed["route"]["receiver"] in receivers
