"""Shared fixtures: small synthetic training data and profiles built from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.demo.synthetic import training_table, write_csv
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.model import Profile

# The worker's integration fixtures (setup, make_profile, ...) for every test module.
pytest_plugins = ["support.kafka", "support.servers"]


@pytest.fixture(scope="session")
def training_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.csv"
    write_csv(str(path), training_table(6000, seed=3))
    return path


@pytest.fixture(scope="session")
def profile(training_csv: Path) -> Profile:
    return build_profile(training_csv, BuildOptions(
        model="churn", version="3", predictions=("prediction",), window_size=500,
        calibration_windows=120, sample_rows=6000))


@pytest.fixture(scope="session")
def profiles_dir(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("profiles")
    profile.save(d / "churn-3.json")
    return d


@pytest.fixture(scope="session")
def services() -> None:
    """The local servers (Kafka, VictoriaMetrics, InfluxDB 1.x), started by the project script."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(["bash", "scripts/services.sh", "up"], cwd=root,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"services.sh up failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def sasl_ssl(services: None) -> dict[str, str]:
    """The `DRIFT_MONITOR_*` settings of the local broker's SASL_SSL listener (SCRAM-SHA-512 user,
    CA file, password file), as `scripts/services.sh up` wrote them under the services directory
    (`SERVICES_DIR`, default `.services`)."""
    import os

    root = Path(__file__).resolve().parent.parent
    env_file = Path(os.environ.get("SERVICES_DIR", root / ".services")) / "kafka" / "sasl-ssl.env"
    if not env_file.is_file():
        pytest.fail(f"no {env_file}: the broker has no SASL_SSL listener (a broker started before "
                    "the listener was configured must be restarted: scripts/services.sh down "
                    "kafka, then up kafka)")
    settings = {}
    for line in env_file.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("DRIFT_MONITOR_"):
            settings[name] = value
    return settings
