"""drift-monitor: streaming drift monitoring for ML models whose predictions flow through Kafka."""

__version__ = "0.1.0"
