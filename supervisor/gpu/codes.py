"""NVIDIA code tables (XIDs, clock event reasons, recovery actions), free of pynvml.

The values mirror nvidia-ml-py 13.615.71 and NVIDIA's XID catalog (see
``shared/reference/nvml-and-textual.md`` A.3, A.5 and A.6); a test checks the bits against pynvml.
"""

from __future__ import annotations

# Short texts for the dashboard, keyed by XID. Unknown XIDs render as "XID n".
XID_DESCRIPTIONS: dict[int, str] = {
    13: "graphics engine exception",
    31: "GPU memory page fault",
    32: "invalid or corrupted push buffer stream",
    38: "driver firmware error",
    39: "PCIe error",
    42: "PCIe error",
    43: "GPU stopped processing",
    45: "preemptive cleanup",
    46: "GPU stopped processing (timeout)",
    48: "double-bit ECC error",
    54: "power error",
    56: "display engine error",
    57: "power error",
    58: "power error",
    60: "thermal error",
    61: "internal micro-controller breakpoint",
    62: "internal micro-controller halt",
    63: "memory remapping event (reset pending)",
    64: "memory remapping failure",
    67: "NVLink error",
    68: "video decoder (NVDEC) error",
    73: "NVLink error",
    74: "NVLink error",
    78: "power error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    93: "InfoROM error",
    94: "contained ECC error",
    95: "uncontained ECC error",
    109: "context-switch timeout",
    119: "GSP RPC timeout",
    120: "GSP error",
    121: "C2C link corrected error",
    136: "link training failed",
    137: "NVLink error",
    140: "unrecovered ECC error",
    143: "GPU initialization error",
    154: "GPU recovery action changed",
    155: "NVLink software-defined error",
    156: "resource retirement event",
    158: "fatal timeout",
}

# XIDs after which the GPU must stop taking jobs until an operator clears it: DCGM's FAIL XIDs
# plus NVIDIA's RESET_GPU / RESTART_BM buckets (reference A.5, A.6). Application XIDs (13, 31, 43,
# 45, 68), 63 (remap recorded, applied at reset), 92 and 94 (contained ECC) are deliberately not
# here: they fail one job, not the GPU.
CRITICAL_XIDS: frozenset[int] = frozenset(
    {46, 48, 62, 64, 74, 79, 95, 109, 119, 120, 136, 140, 143, 155, 156, 158}
)


def describe_xid(xid: int) -> str:
    """Return ``"XID 79: GPU has fallen off the bus"``-style text for a dashboard."""
    text = XID_DESCRIPTIONS.get(xid)
    return f"XID {xid}: {text}" if text else f"XID {xid}"


# Clock event ("throttle") reason bits, nvmlClocksEventReason* / nvmlClocksThrottleReason*.
CLOCK_EVENT_REASONS: dict[int, str] = {
    0x001: "gpu_idle",
    0x002: "applications_clocks_setting",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown",
    0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}

CLOCK_EVENT_NAMES: frozenset[str] = frozenset(CLOCK_EVENT_REASONS.values())

# The bits that mean "this GPU is being slowed for a physical reason" (mask 0xE8, reference A.3).
# SwPowerCap is left out: it is normal under load.
THERMAL_OR_POWER_SLOWDOWNS: frozenset[str] = frozenset(
    {"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)


def decode_clock_event_reasons(mask: int) -> tuple[str, ...]:
    """Turn a clock event reason bitmask into names, lowest bit first; unknown bits as hex."""
    names: list[str] = []
    bit = 1
    while bit <= mask:
        if mask & bit:
            names.append(CLOCK_EVENT_REASONS.get(bit, f"0x{bit:x}"))
        bit <<= 1
    return tuple(names)


# NVML_FI_DEV_GET_GPU_RECOVERY_ACTION values (pynvml.py 453-460).
RECOVERY_ACTIONS: dict[int, str] = {
    0: "none",
    1: "gpu_reset",
    2: "node_reboot",
    3: "drain_p2p",
    4: "drain_and_reset",
    5: "recover_imex_domain",
    6: "bus_reset",
    7: "system_reboot",
}


def describe_recovery_action(value: int) -> str:
    """Name a recovery-action value; unknown values as ``"action_<n>"``."""
    return RECOVERY_ACTIONS.get(value, f"action_{value}")
