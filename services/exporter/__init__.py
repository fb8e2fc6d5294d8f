"""The exporter service: device readings from NATS into Prometheus (see docs/exporter.md)."""
