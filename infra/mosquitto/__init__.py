"""Mosquitto's tuned config, shipped as package data: embedded brokers read it from an installed wheel."""
