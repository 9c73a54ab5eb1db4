"""RFC 8428 section 5.1's example packs, their base times shifted to a recent time, and the profiles
and custom metrics that let the ingester store them as the RFC resolves them.

Each example: (label, topic device, pack, expected rows). An expected row is
(device, metric, seconds after the shifted base time or None for "time of receipt", value, unit,
value_text). The packs are the RFC's, byte for byte but for `bt` (and `t` in 5.1.4's resolved form).
"""

from __future__ import annotations

from typing import Any

OW = "ow-10e2073a01080063"
OW_TYPO = "ow-10e2073a0108006"  # RFC 8428's 5.1.2 second example drops a digit of the address
URN = "urn:dev:ow:10e2073a01080063"

CUSTOM_METRICS: list[dict[str, Any]] = [
    {"metric": "latitude", "value_type": "number", "unit": "lat", "min": -90, "max": 90},
    {"metric": "longitude", "value_type": "number", "unit": "lon", "min": -180, "max": 180},
    {"metric": "battery_level", "value_type": "number", "unit": "%EL", "min": 0, "max": 100},
    {"metric": "label", "value_type": "text"},
    {"metric": "nfc-reader", "value_type": "data"},
    {"metric": "heat", "value_type": "number", "unit": "/", "min": 0, "max": 1},
    {"metric": "fan", "value_type": "number", "unit": "/", "min": 0, "max": 1},
    {"metric": "light", "value_type": "number", "unit": "/", "min": 0, "max": 1},
]

PROFILES: list[dict[str, Any]] = [
    {
        # every 1-wire bus device: the RFC's sensor names itself by its URN alone, told apart by unit
        "profile_id": "onewire",
        "kinds": ["onewire"],
        "names": [
            {"name": URN, "unit": "Cel", "metric": "temperature", "device": OW},
            {"name": URN, "unit": "%RH", "metric": "humidity", "device": OW},
            {"name": URN, "unit": "lat", "metric": "latitude", "device": OW},
            {"name": URN, "unit": "lon", "metric": "longitude", "device": OW},
            {"name": URN, "unit": "%EL", "metric": "battery_level", "device": OW},
        ],
        "prefixes": [
            {"prefix": URN + ":", "device": OW},
            {"prefix": "urn:dev:ow:10e2073a0108006:", "device": OW_TYPO},
        ],
        "aliases": {"temp": "temperature", "open": "door_open"},
    },
    {
        # a device answering for itself and for another one (5.1.6)
        "profile_id": "lab-gateway",
        "devices": ["lab-2"],
        "prefixes": ["2001:db8::2/", {"prefix": "2001:db8::1/", "device": "lab-1"}],
    },
    {
        # a controller switching two lights (5.1.7)
        "profile_id": "lights",
        "devices": ["lights-ctl"],
        "names": [
            {"name": "2001:db8::3", "unit": "/", "metric": "light", "device": "light-3"},
            {"name": "2001:db8::4", "unit": "/", "metric": "light", "device": "light-4"},
        ],
    },
]

#: registered before the test (the kind selects the `onewire` profile)
DEVICES: list[tuple[str, str]] = [(OW, "onewire"), (OW_TYPO, "onewire")]

Row = tuple[str, str, float | None, float | None, str | None, str | None]


def examples(base: float) -> list[tuple[str, str, list[dict[str, Any]], list[Row]]]:
    """The packs with base times `base + k * 1000` (one slot per example, no overlaps)."""
    b3, b4, b5, b6, b12, b13 = (base + k * 1000 for k in range(6))
    humidity = [20, 20.3, 20.7, 21.2]
    lon = [24.30621, 24.30622, 24.30623, 24.30628]
    lat = [60.07965, 60.07965, 60.07966, 60.07967]
    ex513_rows: list[Row] = []
    for k, t in enumerate((0, 60, 120, 180)):
        ex513_rows += [
            (OW, "humidity", t, humidity[k], "%RH", None),
            (OW, "longitude", t, lon[k], "lon", None),
            (OW, "latitude", t, lat[k], "lat", None),
        ]
    ex513_rows.append((OW, "battery_level", 150, 98, "%EL", None))
    stream = [21.2, 21.3, 21.4, 21.4, 21.5, 21.5, 21.5, 21.6, 21.7, 21.7]
    return [
        (
            "5.1.1 single datapoint",
            OW,
            [{"n": URN, "u": "Cel", "v": 23.1}],
            [(OW, "temperature", None, 23.1, "Cel", None)],
        ),
        (
            "5.1.2 multiple datapoints",
            OW,
            [{"bn": URN + ":", "n": "voltage", "u": "V", "v": 120.1}, {"n": "current", "u": "A", "v": 1.2}],
            [(OW, "voltage", None, 120.1, "V", None), (OW, "current", None, 1.2, "A", None)],
        ),
        (
            "5.1.2 multiple datapoints, base time and unit",
            OW_TYPO,
            [
                {
                    "bn": "urn:dev:ow:10e2073a0108006:",
                    "bt": b3 + 0.001,
                    "bu": "A",
                    "bver": 5,
                    "n": "voltage",
                    "u": "V",
                    "v": 120.1,
                },
                {"n": "current", "t": -5, "v": 1.2},
                {"n": "current", "t": -4, "v": 1.3},
                {"n": "current", "t": -3, "v": 1.4},
                {"n": "current", "t": -2, "v": 1.5},
                {"n": "current", "t": -1, "v": 1.6},
                {"n": "current", "v": 1.7},
            ],
            [(OW_TYPO, "voltage", 0.001, 120.1, "V", None)]
            + [(OW_TYPO, "current", 0.001 - k, 1.2 + 0.1 * (5 - k), "A", None) for k in range(5, -1, -1)],
        ),
        (
            "5.1.2 SensML stream (first ten records, closed)",
            OW,
            [{"bn": URN, "bt": b4, "bu": "%RH", "v": stream[0]}]
            + [{"t": 10 * k, "v": stream[k]} for k in range(1, 10)],
            [(OW, "humidity", 10 * k, stream[k], "%RH", None) for k in range(10)],
        ),
        (
            "5.1.3 multiple measurements",
            OW,
            [
                {"bn": URN, "bt": b5, "bu": "%RH", "v": 20},
                {"u": "lon", "v": 24.30621},
                {"u": "lat", "v": 60.07965},
                {"t": 60, "v": 20.3},
                {"u": "lon", "t": 60, "v": 24.30622},
                {"u": "lat", "t": 60, "v": 60.07965},
                {"t": 120, "v": 20.7},
                {"u": "lon", "t": 120, "v": 24.30623},
                {"u": "lat", "t": 120, "v": 60.07966},
                {"u": "%EL", "t": 150, "v": 98},
                {"t": 180, "v": 21.2},
                {"u": "lon", "t": 180, "v": 24.30628},
                {"u": "lat", "t": 180, "v": 60.07967},
            ],
            ex513_rows,
        ),
        (
            "5.1.4 resolved data (the same rows as 5.1.3: absorbed as identical replays)",
            OW,
            [
                {"n": URN, "u": u, "t": b5 + t, "v": v}
                for t, u, v in [
                    (0, "%RH", 20),
                    (0, "lon", 24.30621),
                    (0, "lat", 60.07965),
                    (60, "%RH", 20.3),
                    (60, "lon", 24.30622),
                    (60, "lat", 60.07965),
                    (120, "%RH", 20.7),
                    (120, "lon", 24.30623),
                    (120, "lat", 60.07966),
                    (150, "%EL", 98),
                    (180, "%RH", 21.2),
                    (180, "lon", 24.30628),
                    (180, "lat", 60.07967),
                ]
            ],
            [],
        ),
        (
            "5.1.5 multiple data types",
            OW,
            [
                {"bn": URN + ":", "n": "temp", "u": "Cel", "v": 23.1},
                {"n": "label", "vs": "Machine Room"},
                {"n": "open", "vb": False},
                {"n": "nfc-reader", "vd": "aGkgCg"},
            ],
            [
                (OW, "temperature", None, 23.1, "Cel", None),
                (OW, "label", None, None, None, "Machine Room"),
                (OW, "door_open", None, 0.0, None, None),
                (OW, "nfc-reader", None, None, None, "aGkgCg"),
            ],
        ),
        (
            "5.1.6 collection of resources",
            "lab-2",
            [
                {"bn": "2001:db8::2/", "bt": b6, "n": "temperature", "u": "Cel", "v": 25.2},
                {"n": "humidity", "u": "%RH", "v": 30},
                {"bn": "2001:db8::1/", "n": "temperature", "u": "Cel", "v": 12.3},
                {"n": "humidity", "u": "%RH", "v": 67},
            ],
            [
                ("lab-2", "temperature", 0, 25.2, "Cel", None),
                ("lab-2", "humidity", 0, 30, "%RH", None),
                ("lab-1", "temperature", 0, 12.3, "Cel", None),
                ("lab-1", "humidity", 0, 67, "%RH", None),
            ],
        ),
        (
            "5.1.7 setting an actuator: thermostat",
            OW,
            [
                {"bn": URN + ":"},
                {"n": "temp", "u": "Cel", "v": 23.1},
                {"n": "heat", "u": "/", "v": 1},
                {"n": "fan", "u": "/", "v": 0},
            ],
            [
                # received a moment after 5.1.1 and 5.1.5: its own "now"
                (OW, "temperature", None, 23.1, "Cel", None),
                (OW, "heat", None, 1, "/", None),
                (OW, "fan", None, 0, "/", None),
            ],
        ),
        (
            "5.1.7 setting an actuator: two lights on",
            "lights-ctl",
            [{"bt": b12, "bu": "/", "n": "2001:db8::3", "v": 1}, {"n": "2001:db8::4", "v": 1}],
            [("light-3", "light", 0, 1, "/", None), ("light-4", "light", 0, 1, "/", None)],
        ),
        (
            "5.1.7 setting an actuator: two lights dimmed, then off",
            "lights-ctl",
            [
                {"bt": b13, "bu": "/", "n": "2001:db8::3", "v": 0.5},
                {"n": "2001:db8::4", "v": 0.5},
                {"n": "2001:db8::3", "t": 0.1, "v": 0},
                {"n": "2001:db8::4", "t": 0.1, "v": 0},
            ],
            [
                ("light-3", "light", 0, 0.5, "/", None),
                ("light-4", "light", 0, 0.5, "/", None),
                ("light-3", "light", 0.1, 0, "/", None),
                ("light-4", "light", 0.1, 0, "/", None),
            ],
        ),
    ]


#: base time of each example's expected rows, as an offset from `base` (None: no base time)
BASES = {
    "5.1.2 multiple datapoints, base time and unit": 0,
    "5.1.2 SensML stream (first ten records, closed)": 1000,
    "5.1.3 multiple measurements": 2000,
    "5.1.6 collection of resources": 3000,
    "5.1.7 setting an actuator: two lights on": 4000,
    "5.1.7 setting an actuator: two lights dimmed, then off": 5000,
}

#: RFC 8428 section 6's CBOR example (the pack of 5.1.2's second example), as printed there
EX3_CBOR_HEX = (
    "87a721781b75726e3a6465763a6f773a31306532303733613031303830303"
    "63a22fb41d303a15b00106223614120050067766f6c7461676501615602fb"
    "405e066666666666a3006763757272656e74062402fb3ff3333333333333"
    "a3006763757272656e74062302fb3ff4cccccccccccda3006763757272656e"
    "74062202fb3ff6666666666666a3006763757272656e74062102f93e00a300"
    "6763757272656e74062002fb3ff999999999999aa3006763757272656e7406"
    "0002fb3ffb333333333333"
)
EX3_JSON = [
    {"bn": "urn:dev:ow:10e2073a0108006:", "bt": 1.276020076001e09, "bu": "A", "bver": 5,
     "n": "voltage", "u": "V", "v": 120.1},
    {"n": "current", "t": -5, "v": 1.2},
    {"n": "current", "t": -4, "v": 1.3},
    {"n": "current", "t": -3, "v": 1.4},
    {"n": "current", "t": -2, "v": 1.5},
    {"n": "current", "t": -1, "v": 1.6},
    {"n": "current", "v": 1.7},
]  # fmt: skip
