"""MQTT telemetry and setpoints: topics, payloads, ingest, quarantine, simulator."""
