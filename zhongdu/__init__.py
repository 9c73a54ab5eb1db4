"""Zhongdu (中都): smart-city IoT telemetry and 4G coverage for Taichung."""

__version__ = "0.1.0"
