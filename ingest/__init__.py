"""Ingestion: MQTT telemetry from the park and the base stations into the database."""
