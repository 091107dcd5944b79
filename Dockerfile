# The drift-monitor worker image (docker-compose.yml builds it as drift-monitor:local).

# The compiled decoder (native/): one abi3 wheel for Python 3.11 and later, built with maturin.
FROM rust:1-slim-bookworm AS native
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && python3 -m venv /build \
    && /build/bin/pip install --no-cache-dir "maturin>=1.5,<2"
COPY native /src/native
RUN /build/bin/maturin build --release --manifest-path /src/native/Cargo.toml \
        --interpreter python3 --out /wheels

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
COPY --from=native /wheels /wheels
# The language model, uncompressed once here (README: DRIFT_MONITOR_CACHE_DIR), not at each start.
ENV DRIFT_MONITOR_CACHE_DIR=/opt/drift-monitor-cache
RUN pip install . /wheels/*.whl \
    && python -c "from monitor.profile.language import warm_up; warm_up().join()" \
    && useradd --system --uid 10001 --home-dir /app drift \
    && mkdir -p /app/profiles \
    && chown drift /app

USER drift
CMD ["drift-monitor", "worker"]
