"""`python -m monitor.demo`: the README's main job."""

import sys

from monitor.demo.run import main
from monitor.errors import MonitorError

try:
    sys.exit(main())
except MonitorError as exc:  # e.g. Kafka unreachable or refusing the DRIFT_MONITOR_KAFKA_* settings
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_status)
