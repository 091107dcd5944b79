"""The worker's HTTP endpoints, on the Faust app's web server (`DRIFT_MONITOR_HTTP_PORT`):

* `/healthz`: 200 while the process and its event loop are alive (a liveness probe);
* `/ready`: 200 when the worker does its job — the predictions topic found, both stages joined
  their consumer groups and loaded every assigned partition, profiles loaded, the broker and the
  metrics store reachable — else 503 with one reason per line (a readiness probe);
* `/metrics`: the `drift_service` counters in the Prometheus text format, the same names as the
  fields of the `drift_service` point (`drift_service_<field>`, as VictoriaMetrics names them).

>>> print(prometheus_text({"records_processed": 12, "consumer_lag": None,
...                        "kafka_connected": 1}, worker="w1"), end="")
# HELP drift_service_records_processed Valid records folded into windows since the worker started.
# TYPE drift_service_records_processed counter
drift_service_records_processed{worker="w1"} 12
# HELP drift_service_kafka_connected 1 when the broker answers and Kafka writes go through, else 0.
# TYPE drift_service_kafka_connected gauge
drift_service_kafka_connected{worker="w1"} 1
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust

from monitor.errors import ServiceError

# name -> (type, help). The drift_service point carries the same fields (README, "Operations").
SERVICE_METRICS: dict[str, tuple[str, str]] = {
    "records_processed": ("counter", "Valid records folded into windows since the worker started."),
    "invalid_records": ("counter", "Records refused (dead-lettered) since the worker started."),
    "records_too_large": ("counter", "Messages above DRIFT_MONITOR_MAX_MESSAGE_BYTES, dead-lettered unparsed."),
    "late_records": ("counter", "Records that came after their window closed."),
    "dlq_messages": ("counter", "Messages written to the dead-letter topic."),
    "windows_evaluated": ("counter", "Model windows evaluated by stage two."),
    "alerts_sent": ("counter", "Alert events published."),
    "metric_write_failures": ("counter", "Failed writes to the metrics store."),
    "metric_points_dropped": ("counter", "Metric points dropped because the outbox was full."),
    "kafka_failures": ("counter", "Failed Kafka checkpoints, deliveries and loads (tried again)."),
    "consumer_lag": ("gauge", "Records of the assigned predictions partitions not folded in yet."),
    "partials_lag": ("gauge", "Messages of the assigned partials partitions not merged yet."),
    "open_windows": ("gauge", "Windows open in stage one."),
    "models_held": ("gauge", "Models with state in stage one."),
    "metric_points_buffered": ("gauge", "Metric points in the outbox, waiting for the store."),
    "alerts_firing": ("gauge", "Alert episodes open (firing) on this worker's models."),
    "checkpoint_bytes": ("gauge", "Size of stage one's last checkpoint."),
    "partitions_assigned": ("gauge", "Partitions assigned to this worker (both stages)."),
    "kafka_connected": ("gauge", "1 when the broker answers and Kafka writes go through, else 0."),
    "metrics_store_up": ("gauge", "1 when the metrics store took the last write, else 0."),
    "ready": ("gauge", "1 when /ready answers 200, else 0."),
}


def prometheus_text(values: Mapping[str, Any], *, worker: str) -> str:
    """The known metrics among `values` (None: not known now, left out), in the text format."""
    label = worker.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    out = []
    for name, (kind, text) in SERVICE_METRICS.items():
        value = values.get(name)
        if value is None:
            continue
        metric = f"drift_service_{name}"
        out += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}",
                f'{metric}{{worker="{label}"}} {_number(value)}']
    return "\n".join(out) + "\n"


def _number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


Snapshot = Callable[[], Awaitable[dict[str, Any]]]
Reasons = Callable[[], Awaitable[list[str]]]


def add_endpoints(app: faust.App, *, worker: str, snapshot: Snapshot,
                  not_ready: Reasons) -> None:
    """Register /healthz, /ready and /metrics on `app`'s web server."""

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.text("ok\n")

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        reasons = await not_ready()
        if reasons:
            return web.text("not ready\n" + "".join(f"- {r}\n" for r in reasons), status=503)
        return web.text("ready\n")

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body = prometheus_text(await snapshot(), worker=worker)
        return web.text(body, content_type="text/plain; version=0.0.4")


def listen_port(bind: str, port: int) -> int:
    """The port to listen on: `port`, or a free one when it is 0 (Faust's web server wants a
    number). ServiceError when `port` is taken, in one line, before anything starts."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError as exc:
            raise ServiceError(f"cannot listen on {bind}:{port} (DRIFT_MONITOR_HTTP_PORT): "
                               f"{exc.strerror or exc}") from None
        return int(sock.getsockname()[1])
