"""The broker's security: production Mosquitto configuration and per-device MQTT credentials.

`write_broker_config` writes a hardened Mosquitto 2.0 configuration with the dynamic security
plugin; `DynsecAdmin` manages its clients and roles at run time; `issue`/`revoke` keep the
registry (hashes only) and the broker in step.
"""

from typing import TYPE_CHECKING

from zhongdu._lazy import lazy_exports

if TYPE_CHECKING:
    from zhongdu.broker._config import (
        ADMIN_USER,
        INGEST_USER,
        BrokerConfig,
        dynsec_bootstrap,
        find_dynsec_plugin,
        mosquitto_conf,
        write_broker_config,
    )
    from zhongdu.broker._credentials import Issued, issue, revoke, username_for
    from zhongdu.broker._dynsec import DynsecAdmin, DynsecError, entity_topic

_EXPORTS = {
    **dict.fromkeys(
        (
            "ADMIN_USER",
            "INGEST_USER",
            "BrokerConfig",
            "dynsec_bootstrap",
            "find_dynsec_plugin",
            "mosquitto_conf",
            "write_broker_config",
        ),
        "._config",
    ),
    **dict.fromkeys(("Issued", "issue", "revoke", "username_for"), "._credentials"),
    **dict.fromkeys(("DynsecAdmin", "DynsecError", "entity_topic"), "._dynsec"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ADMIN_USER",
    "INGEST_USER",
    "BrokerConfig",
    "DynsecAdmin",
    "DynsecError",
    "Issued",
    "dynsec_bootstrap",
    "entity_topic",
    "find_dynsec_plugin",
    "issue",
    "mosquitto_conf",
    "revoke",
    "username_for",
    "write_broker_config",
]
