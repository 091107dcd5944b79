"""The metrics sink over HTTPS with a private CA (`DRIFT_MONITOR_INFLUX_CA_FILE`): a real
VictoriaMetrics serving TLS with a certificate of a CA made here, on a port of its own."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.outputs.influx_sink import InfluxWriter, StoreError, make_writer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def make_ca_and_server_cert(d: Path) -> None:
    """ca.pem, and server.pem/server.key for 127.0.0.1 signed by it (openssl)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "ca.key",
            "-out", "ca.pem", "-subj", "/CN=test store CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-days", "1", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-extfile", "server.ext", "-out", "server.pem")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_store(services: None,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(https URL, CA file) of a VictoriaMetrics started for these tests (`services` installs it)."""
    d = tmp_path_factory.mktemp("tls-store")
    make_ca_and_server_cert(d)
    url = f"https://127.0.0.1:{free_port()}"
    log = open(d / "vm.log", "wb")
    proc = subprocess.Popen(["victoria-metrics", f"-httpListenAddr={url.split('//')[1]}",
                             f"-storageDataPath={d / 'data'}", "-tls",
                             f"-tlsCertFile={d / 'server.pem'}", f"-tlsKeyFile={d / 'server.key'}",
                             "-search.latencyOffset=0s", "-search.disableCache"],
                            stdout=log, stderr=subprocess.STDOUT)
    context = ssl.create_default_context(cafile=str(d / "ca.pem"))
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", context=context, timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"victoria-metrics with TLS did not start:\n"
                            f"{(d / 'vm.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield url, str(d / "ca.pem")
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def exported(url: str, ca_file: str, metric: str) -> list[float]:
    context = ssl.create_default_context(cafile=ca_file)
    urllib.request.urlopen(f"{url}/internal/force_flush", context=context, timeout=10).close()
    query = urllib.parse.urlencode({"match[]": metric, "start": "0"})
    with urllib.request.urlopen(f"{url}/api/v1/export?{query}", context=context,
                                timeout=10) as response:
        lines = response.read().decode().splitlines()
    return [v for line in lines if line for v in json.loads(line)["values"]]


def test_points_reach_an_https_store_signed_by_a_private_ca(tls_store: tuple[str, str]) -> None:
    url, ca_file = tls_store
    measurement = f"tls_{uuid.uuid4().hex[:8]}"
    writer = make_writer(url, bucket="drift", ca_file=ca_file)
    writer.write([f"{measurement} value=42 {time.time_ns()}"])  # raises unless acknowledged
    writer.close()
    deadline = time.monotonic() + 20
    while not (values := exported(url, ca_file, f"{measurement}_value")):
        assert time.monotonic() < deadline, "the point never arrived"
        time.sleep(0.25)
    assert values == [42]


def test_without_the_ca_the_store_is_refused_with_a_reason(
        tls_store: tuple[str, str]) -> None:
    """The writer says the store did not take the points (the worker keeps them in its outbox
    and retries); nothing is written."""
    url, ca_file = tls_store
    measurement = f"tls_{uuid.uuid4().hex[:8]}"
    writer = InfluxWriter(url, bucket="drift")
    with pytest.raises(StoreError, match="did not take 1 points"):
        writer.write([f"{measurement} value=1 {time.time_ns()}"])
    writer.close()
    assert exported(url, ca_file, f"{measurement}_value") == []
