"""A Kafka broker and a VictoriaMetrics of a test's own, which it may stop and start again.

Outage tests never touch the shared servers: `scripts/services.sh` starts these with their own
`SERVICES_DIR` and free ports (it honours KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_SASL_PORT,
KAFKA_HEAP_OPTS and VM_PORT), and `down` stops only what that directory's pid files name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnServers:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.kafka_port = free_port()
        self.vm_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DRIFT_MONITOR_")},
            "SERVICES_DIR": str(directory),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_SASL_PORT": str(free_port()),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m",
            "VM_PORT": str(self.vm_port),
            "SERVICES_WAIT_SECS": "120",
        }
        self.started: set[str] = set()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def vm(self) -> str:
        return f"http://127.0.0.1:{self.vm_port}"

    def _script(self, action: str, service: str) -> float:
        """Run `services.sh action service`; returns the seconds it took."""
        began = time.monotonic()
        result = subprocess.run(["bash", "scripts/services.sh", action, service], cwd=ROOT,
                                env=self.env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            pytest.fail(f"services.sh {action} {service} failed:\n{result.stderr[-3000:]}")
        return time.monotonic() - began

    def up(self, service: str) -> float:
        """Start `kafka` or `vm` and wait until it answers; returns the seconds it took."""
        self.started.add(service)
        return self._script("up", service)

    def down(self, service: str) -> float:
        return self._script("down", service)

    def close(self) -> None:
        for service in sorted(self.started):
            subprocess.run(["bash", "scripts/services.sh", "down", service], cwd=ROOT,
                           env=self.env, capture_output=True, timeout=120)


def _own(tmp_path_factory: pytest.TempPathFactory, which: str) -> Iterator[OwnServers]:
    servers = OwnServers(tmp_path_factory.mktemp(f"own-{which}"))
    try:
        servers.up(which)
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="module")
def own_kafka(services: None, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[OwnServers]:
    """A broker of this test module's own (shared servers stay untouched)."""
    yield from _own(tmp_path_factory, "kafka")


@pytest.fixture(scope="module")
def own_vm(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServers]:
    """A VictoriaMetrics of this test module's own."""
    yield from _own(tmp_path_factory, "vm")
