"""Simulators: the Shuinan smart park and the city's base stations on MQTT."""
