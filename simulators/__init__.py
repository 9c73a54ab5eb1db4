"""Simulators: the Shuinan (水湳) smart park and the city's base stations on MQTT.

`run_simulation(SimulationConfig(...), stop_event)` publishes until stopped (the demo runs it in a
thread); `generate_messages(config)` is the deterministic message stream without a network (tests,
benchmarks); `park_devices` and `load_layout` list the entities a run will speak for (to register
them with the ingester).
"""

from typing import TYPE_CHECKING

from zhongdu._lazy import lazy_exports

if TYPE_CHECKING:
    from zhongdu.simulators._environment import Environment, mobile_traffic_index, traffic_index
    from zhongdu.simulators._faults import FAULT_KINDS, FaultConfig, Outgoing, corrupt
    from zhongdu.simulators._network import BrokerError
    from zhongdu.simulators._park import (
        KIND_CYCLE,
        SHUINAN_LAT,
        SHUINAN_LON,
        DeviceModel,
        ParkDevice,
        park_devices,
        senml_pack,
    )
    from zhongdu.simulators._publisher import (
        Plan,
        Simulation,
        SimulationConfig,
        SimulationStats,
        demo_config,
        generate_messages,
        make_plan,
        run_simulation,
    )
    from zhongdu.simulators._solar import (
        TAICHUNG_LAT,
        TAICHUNG_LON,
        clear_sky_ghi,
        inverter_power_w,
        solar_elevation_deg,
    )
    from zhongdu.simulators._stations import (
        LayoutError,
        Outage,
        OutageSchedule,
        StationModel,
        StationSpec,
        load_layout,
        read_station_csv,
        rfc3339,
        synthetic_layout,
    )

# Loaded on first use, so that `zhongdu --help` does not pay for the simulators' models.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Environment": "._environment",
        "mobile_traffic_index": "._environment",
        "traffic_index": "._environment",
        "FAULT_KINDS": "._faults",
        "FaultConfig": "._faults",
        "Outgoing": "._faults",
        "corrupt": "._faults",
        "BrokerError": "._network",
        "KIND_CYCLE": "._park",
        "SHUINAN_LAT": "._park",
        "SHUINAN_LON": "._park",
        "DeviceModel": "._park",
        "ParkDevice": "._park",
        "park_devices": "._park",
        "senml_pack": "._park",
        "Plan": "._publisher",
        "Simulation": "._publisher",
        "SimulationConfig": "._publisher",
        "SimulationStats": "._publisher",
        "demo_config": "._publisher",
        "generate_messages": "._publisher",
        "make_plan": "._publisher",
        "run_simulation": "._publisher",
        "TAICHUNG_LAT": "._solar",
        "TAICHUNG_LON": "._solar",
        "clear_sky_ghi": "._solar",
        "inverter_power_w": "._solar",
        "solar_elevation_deg": "._solar",
        "LayoutError": "._stations",
        "Outage": "._stations",
        "OutageSchedule": "._stations",
        "StationModel": "._stations",
        "StationSpec": "._stations",
        "load_layout": "._stations",
        "read_station_csv": "._stations",
        "rfc3339": "._stations",
        "synthetic_layout": "._stations",
    },
)

__all__ = [
    "FAULT_KINDS",
    "KIND_CYCLE",
    "SHUINAN_LAT",
    "SHUINAN_LON",
    "TAICHUNG_LAT",
    "TAICHUNG_LON",
    "BrokerError",
    "DeviceModel",
    "Environment",
    "FaultConfig",
    "LayoutError",
    "Outage",
    "OutageSchedule",
    "Outgoing",
    "ParkDevice",
    "Plan",
    "Simulation",
    "SimulationConfig",
    "SimulationStats",
    "StationModel",
    "StationSpec",
    "clear_sky_ghi",
    "corrupt",
    "demo_config",
    "generate_messages",
    "inverter_power_w",
    "load_layout",
    "make_plan",
    "mobile_traffic_index",
    "park_devices",
    "read_station_csv",
    "rfc3339",
    "run_simulation",
    "senml_pack",
    "solar_elevation_deg",
    "synthetic_layout",
    "traffic_index",
]
