# The drift-monitor worker image (docker-compose.yml builds it as drift-monitor:local).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
# Window state lives in Kafka (the worker's compacted state topics), not on this disk; /app is
# writable only for Faust's small data directory.
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app drift \
    && mkdir -p /app/profiles \
    && chown drift /app

USER drift
CMD ["drift-monitor", "worker"]
