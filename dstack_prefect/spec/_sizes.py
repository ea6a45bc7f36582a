"""Sizes (`16GB`, `512MiB`, `2Gi`) to MiB, the one unit the plan uses.

dstack's own units are decimal (`16GB` = 16·10⁹ bytes); its code also accepts binary units.
A bare integer is already MiB. The result is rounded up, so a minimum is never undershot. A
size of zero means nothing (no memory, no `/dev/shm`) and is refused.
"""

from __future__ import annotations

import math
import re

_MIB = 1024 * 1024

_UNITS: dict[str, int] = {
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "ki": 1024,
    "k": 1024,
    "mib": 1024**2,
    "mi": 1024**2,
    "m": 1024**2,
    "gib": 1024**3,
    "gi": 1024**3,
    "g": 1024**3,
    "tib": 1024**4,
    "ti": 1024**4,
    "t": 1024**4,
}

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)?\s*$")

SIZE_EXPECTED = "a size such as '16GB', '512MiB' or '2Gi'"
"""What every size error expects; sizes are above zero."""


def parse_size(value: object) -> int:
    """Return ``value`` in MiB (rounded up).

    Raises:
        ValueError: ``value`` is not a size, or is zero; the message names what was expected.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        msg = f"got {value!r}, expected {SIZE_EXPECTED}"
        raise ValueError(msg)
    if isinstance(value, int):
        mib = value
    else:
        match = _SIZE_RE.match(value)
        unit = (match.group(2) or "mib").lower() if match else ""
        if match is None or unit not in _UNITS:
            msg = f"got {value!r}, expected {SIZE_EXPECTED}"
            raise ValueError(msg)
        mib = math.ceil(float(match.group(1)) * _UNITS[unit] / _MIB)
    if mib < 0:
        msg = f"got {value!r}, expected {SIZE_EXPECTED}"
        raise ValueError(msg)
    if mib == 0:
        msg = f"got {value!r}, a size of zero, expected {SIZE_EXPECTED}"
        raise ValueError(msg)
    return mib
