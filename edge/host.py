"""Host readings, the one place that reads them: CPU temperature (the hottest thermal zone), the
Raspberry Pi firmware's throttling flags, CPU use and memory from /proc, disk use and the load.

Used by the overheat alarm (:mod:`edge.alarm_service`), the page's device health and /metrics
(:class:`SystemStats`) and ``medtrack check`` (:mod:`edge.selfcheck`), so all three show the same
temperature. Every reading is None (or empty) where the box does not have it: not Linux, a
container, a laptop without thermal zones.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from pathlib import Path
from typing import Any

THERMAL_DIR = Path("/sys/class/thermal")
THERMAL_GLOB = str(THERMAL_DIR / "thermal_zone*" / "temp")
THROTTLED_FILE = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")  # Raspberry Pi firmware


def thermal_glob(thermal_dir: str | Path) -> str:
    """The pattern of the zones' temperature files under a /sys/class/thermal-like folder."""
    return str(Path(thermal_dir) / "thermal_zone*" / "temp")


def thermal_zones(pattern: str = THERMAL_GLOB) -> dict[str, float]:
    """Degrees C of every readable zone whose temperature file matches ``pattern`` (millidegrees
    in the files), keyed ``"thermal_zoneN:<type>"`` (the zone's folder name when it has no type)."""
    zones: dict[str, float] = {}
    for path in sorted(glob.glob(pattern)):
        zone = Path(path).parent
        try:
            milli = int(Path(path).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        try:
            kind = (zone / "type").read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            kind = zone.name
        zones[f"{zone.name}:{kind}"] = milli / 1000.0
    return zones


def read_cpu_temperature(pattern: str = THERMAL_GLOB) -> float | None:
    """The CPU temperature: the hottest readable zone in degrees C, None when there is none."""
    temps = thermal_zones(pattern).values()
    return max(temps) if temps else None


def read_throttled(path: Path = THROTTLED_FILE) -> int | None:
    """The Pi firmware's get_throttled bits (under-voltage, capped, throttled), None off a Pi."""
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def existing_parent(path: str | Path) -> Path:
    """``path`` or its nearest folder that exists (a state dir not made yet is on that disk)."""
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def disk_usage(path: str | Path) -> tuple[Path, Any]:
    """(the folder measured, ``shutil.disk_usage`` of it) for the disk holding ``path``."""
    where = existing_parent(path)
    return where, shutil.disk_usage(where)


class SystemStats:
    """CPU %, temperature, memory and disk of the box (Linux /proc, /sys); missing readings are None."""

    def __init__(self, disk_path: str | Path = "/", proc: str | Path = "/proc", sys_path: str | Path = "/sys"):
        self.disk_path = Path(disk_path)
        self.proc = Path(proc)
        self.thermal = thermal_glob(Path(sys_path) / "class" / "thermal")
        self._last_cpu: tuple[int, int] | None = None
        self._last: dict[str, Any] = {}
        self._last_t = float("-inf")
        self._cpu_percent()  # prime: the first read() then has a delta

    def _cpu_percent(self) -> float | None:
        try:
            fields = (self.proc / "stat").read_text().splitlines()[0].split()[1:]
            values = [int(v) for v in fields]
        except (OSError, ValueError, IndexError):
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values[:8])
        prev, self._last_cpu = self._last_cpu, (idle, total)
        if prev is None or total <= prev[1]:
            return None
        return round(100.0 * (1 - (idle - prev[0]) / (total - prev[1])), 1)

    def _memory(self) -> tuple[float | None, float | None]:
        try:
            info = {}
            for line in (self.proc / "meminfo").read_text().splitlines():
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
            total, avail = info["MemTotal"], info["MemAvailable"]
        except (OSError, ValueError, KeyError, IndexError):
            return None, None
        return round(100.0 * (total - avail) / total, 1), round(total / 2**20, 1)

    def read(self, max_age_s: float = 2.0) -> dict[str, Any]:
        """Current readings (cached for ``max_age_s``: cheap under load)."""
        now = time.monotonic()
        if now - self._last_t < max_age_s:
            return self._last
        mem_pct, mem_total = self._memory()
        try:
            _, du = disk_usage(self.disk_path)
            disk_pct: float | None = round(100.0 * du.used / du.total, 1)
            disk_free_mb: float | None = round(du.free / 2**20, 1)
        except OSError:
            disk_pct = disk_free_mb = None
        try:
            load1: float | None = round(os.getloadavg()[0], 2)
        except OSError:
            load1 = None
        temp = read_cpu_temperature(self.thermal)
        self._last = {
            "cpu_percent": self._cpu_percent(), "temperature_c": round(temp, 1) if temp is not None else None,
            "memory_used_percent": mem_pct, "memory_total_mb": mem_total,
            "disk_used_percent": disk_pct, "disk_free_mb": disk_free_mb, "load_1m": load1,
        }
        self._last_t = now
        return self._last
