"""Run `drift-monitor worker` with one bad DRIFT_MONITOR_* value at a time; print what it said.

Promise (README "Security", common rules): one readable line, non-zero exit, no traceback, no
secret. `.venv/bin/python bench/break8/bad_env.py`
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-s3cret"
tmp = Path(tempfile.mkdtemp())
(tmp / "notpem.pem").write_text("not a certificate\n")
(tmp / "pw").write_text(SECRET + "\n")
(tmp / "binary").write_bytes(b"\xff\xfe\x00bad")
CASES = {
    "window nan": {"DRIFT_MONITOR_WINDOW_SECONDS": "nan"},
    "window inf": {"DRIFT_MONITOR_WINDOW_SECONDS": "inf"},
    "window 1e400": {"DRIFT_MONITOR_WINDOW_SECONDS": "1e400"},
    "window 1e300": {"DRIFT_MONITOR_WINDOW_SECONDS": "1e300"},
    "window 1e-300": {"DRIFT_MONITOR_WINDOW_SECONDS": "1e-300"},
    "min_records 1e3": {"DRIFT_MONITOR_MIN_RECORDS": "1e3"},
    "max bytes 0": {"DRIFT_MONITOR_MAX_MESSAGE_BYTES": "0"},
    "max bytes huge": {"DRIFT_MONITOR_MAX_MESSAGE_BYTES": "99999999999999999999999"},
    "max bytes 1MiB": {"DRIFT_MONITOR_MAX_MESSAGE_BYTES": "1MiB"},
    "batch 10**30": {"DRIFT_MONITOR_BATCH_SIZE": "1000000000000000000000000000000"},
    "http port -1": {"DRIFT_MONITOR_HTTP_PORT": "-1"},
    "http port ٣": {"DRIFT_MONITOR_HTTP_PORT": "٣"},
    "http port ²": {"DRIFT_MONITOR_HTTP_PORT": "²"},
    "http bind bad": {"DRIFT_MONITOR_HTTP_BIND": "999.1.1.1"},
    "http bind name": {"DRIFT_MONITOR_HTTP_BIND": "no-such-host.invalid"},
    "broker empty host": {"DRIFT_MONITOR_BROKER": "kafka://:9092"},
    "broker junk": {"DRIFT_MONITOR_BROKER": "kafka://no-such-host.invalid:9092"},
    "broker port 0": {"DRIFT_MONITOR_BROKER": "localhost:0"},
    "broker ipv6 unbracketed": {"DRIFT_MONITOR_BROKER": "::1:9092"},
    "broker nothing": {"DRIFT_MONITOR_BROKER": "127.0.0.1:1"},
    "influx url junk": {"DRIFT_MONITOR_INFLUX_URL": "not a url"},
    "influx url ftp": {"DRIFT_MONITOR_INFLUX_URL": "ftp://x"},
    "influx url with password": {"DRIFT_MONITOR_INFLUX_URL": f"http://user:{SECRET}@127.0.0.1:1"},
    "influx ca missing": {"DRIFT_MONITOR_INFLUX_CA_FILE": "/nonexistent/ca.pem"},
    "influx ca notpem": {"DRIFT_MONITOR_INFLUX_CA_FILE": str(tmp / "notpem.pem"),
                         "DRIFT_MONITOR_INFLUX_URL": "https://127.0.0.1:1"},
    "influx ca dir": {"DRIFT_MONITOR_INFLUX_CA_FILE": str(tmp)},
    "kafka ca dir": {"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SSL",
                     "DRIFT_MONITOR_KAFKA_SSL_CAFILE": str(tmp)},
    "kafka ca notpem": {"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SSL",
                        "DRIFT_MONITOR_KAFKA_SSL_CAFILE": str(tmp / "notpem.pem")},
    "protocol lower": {"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "ssl ",
                       "DRIFT_MONITOR_BROKER": "127.0.0.1:1"},
    "password file dir": {"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                          "DRIFT_MONITOR_KAFKA_SASL_USERNAME": "u",
                          "DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE": str(tmp)},
    "password file binary": {"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                             "DRIFT_MONITOR_KAFKA_SASL_USERNAME": "u",
                             "DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE": str(tmp / "binary")},
    "password but plaintext": {"DRIFT_MONITOR_KAFKA_SASL_PASSWORD": SECRET},
    "password file but plaintext": {"DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE": str(tmp / "pw")},
    "sasl to plaintext port": {"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                               "DRIFT_MONITOR_KAFKA_SASL_USERNAME": "u",
                               "DRIFT_MONITOR_KAFKA_SASL_PASSWORD": SECRET,
                               "DRIFT_MONITOR_BROKER": "127.0.0.1:9092"},
    "ssl to plaintext port": {"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SSL",
                              "DRIFT_MONITOR_BROKER": "127.0.0.1:9092"},
    "profiles missing": {"DRIFT_MONITOR_PROFILES": "/nonexistent/profiles"},
    "grace -0": {"DRIFT_MONITOR_GRACE_SECONDS": "-0"},
    "topic bad name": {"DRIFT_MONITOR_PREDICTIONS_TOPIC": "bad topic/name"},
    "group bad": {"DRIFT_MONITOR_GROUP": "x" * 300},
    "group slash": {"DRIFT_MONITOR_GROUP": "team/a"},
    "group dotdot": {"DRIFT_MONITOR_GROUP": "../../etc"},
    "influx url no scheme": {"DRIFT_MONITOR_INFLUX_URL": "127.0.0.1:8428"},
    "influx url bad port": {"DRIFT_MONITOR_INFLUX_URL": "http://127.0.0.1:99999"},
}
only = sys.argv[1:]
for name, extra in CASES.items():
    if only and not any(o in name for o in only):
        continue
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_MONITOR_")}
    env.update({"DRIFT_MONITOR_HTTP_PORT": "0", "DRIFT_MONITOR_PROFILES": str(ROOT / "profiles"),
                "DRIFT_MONITOR_PREDICTIONS_TOPIC": "break8-absent-topic"})
    env.update(extra)
    try:
        r = subprocess.run([str(ROOT / ".venv/bin/drift-monitor"), "worker"], env=env,
                           capture_output=True, text=True, timeout=25, cwd=ROOT)
        out, rc = (r.stdout + r.stderr), r.returncode
    except subprocess.TimeoutExpired as exc:
        out = ((exc.stdout or b"").decode() + (exc.stderr or b"").decode())
        rc = "TIMEOUT(running)"
    bad = []
    if "Traceback" in out:
        bad.append("TRACEBACK")
    if SECRET in out:
        bad.append("SECRET LEAKED")
    errs = [line for line in out.splitlines() if "error" in line.lower()]
    print(f"== {name}: rc={rc} {' '.join(bad)}")
    for line in (errs or out.splitlines()[-3:])[:4]:
        print("   ", line[:300])
