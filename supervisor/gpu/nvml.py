"""The real GPU backend: the only module in fleetq that imports pynvml (package nvidia-ml-py).

Every NVML call goes through ``NvmlBackend._call``, which maps NVMLError codes to what they mean
for the supervisor (reference A.4):

- NotSupported / FunctionNotFound: "not available" (``None``), remembered per (GPU, metric) so the
  call is not repeated;
- GpuIsLost / Unknown / GpuNotFound: the GPU is lost; ResetRequired / CorruptedInforom: a hard
  failure. Either way the whole reading is marked failed and every metric is ``None``. An
  Unknown error from one metric counts only if the GPU also fails a basic memory query, so one
  odd counter on one driver cannot take a working GPU out of the fleet;
- Uninitialized / DriverNotLoaded / LibraryNotFound / LibRmVersionMismatch: NVML is unusable;
- anything else (Timeout, NoData, NoPermission, ...): ``None`` for this sample only.

All methods block (ctypes calls release the GIL); the monitor runs them in its own threads.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pynvml

from supervisor.gpu.codes import decode_clock_event_reasons, describe_recovery_action
from supervisor.gpu.errors import (
    GpuBackendClosedError,
    GpuError,
    NvmlUnavailableError,
    UnknownGpuError,
)
from supervisor.gpu.readings import GpuIdentity, GpuReading, XidEvent

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_MIB = 1 << 20
_EVENTS = -1  # pseudo GPU index for the machine-wide event-set calls in the unsupported cache

_UNSUPPORTED_CODES = frozenset(
    {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND}
)
_LOST_CODES = frozenset(
    {pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN, pynvml.NVML_ERROR_GPU_NOT_FOUND}
)
_HARD_CODES = frozenset({pynvml.NVML_ERROR_RESET_REQUIRED, pynvml.NVML_ERROR_CORRUPTED_INFOROM})
_UNUSABLE_CODES = frozenset(
    {
        pynvml.NVML_ERROR_UNINITIALIZED,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    }
)

_INIT_HINTS: dict[int, str] = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: (
        "libnvidia-ml.so.1 was not found; the NVIDIA driver is not installed on this machine"
    ),
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "the NVIDIA kernel driver is not loaded (try nvidia-smi)",
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "the NVML library and the kernel driver versions differ; reboot or reload the nvidia module"
    ),
    pynvml.NVML_ERROR_NO_PERMISSION: "no permission to open the GPU devices (/dev/nvidia*)",
}


class _HardFailure(Exception):
    """Raised inside the backend when a GPU is lost or needs a reset; becomes a failed reading."""

    def __init__(self, text: str, lost: bool) -> None:
        super().__init__(text)
        self.text = text
        self.lost = lost


def _code(err: BaseException) -> int | None:
    value = getattr(err, "value", None)
    return value if isinstance(value, int) else None


def _describe(err: BaseException) -> str:
    # str() of an NVMLError with a code outside pynvml's table calls into the library; fall back.
    try:
        return str(err)
    except Exception:  # any failure here must not hide the original error
        return f"NVML error {_code(err)}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _handle_key(handle: Any) -> int:
    """A key that is equal for two handle objects of the same device."""
    try:
        address = ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return id(handle)
    return address if address is not None else id(handle)


def init_nvml() -> None:
    """Initialise NVML, or raise ``NvmlUnavailableError`` saying why it cannot be used."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        code = _code(e)
        hint = _INIT_HINTS.get(code) if code is not None else None
        reason = hint or f"nvmlInit failed: {_describe(e)} (NVML error {code})"
        raise NvmlUnavailableError(reason) from e
    except OSError as e:
        raise NvmlUnavailableError(f"loading the NVML library failed: {e}") from e


class NvmlBackend:
    """GPUs read through NVML. Build with ``NvmlBackend.open()``; ``close()`` shuts NVML down."""

    def __init__(self) -> None:
        """Use ``open()``; this assumes NVML is already initialised for this instance."""
        self._lock = threading.Lock()
        self._closed = False
        self._handles: dict[int, Any] = {}
        self._uuids: dict[int, str | None] = {}
        self._discovery_failures: dict[int, _HardFailure] = {}
        self._unsupported: set[tuple[int, str]] = set()
        self._temperature_limits: dict[int, tuple[int | None, int | None]] = {}
        self._event_set: Any = None
        self._handle_indices: dict[int, int] = {}

    @classmethod
    def open(cls) -> NvmlBackend:
        """Initialise NVML once for this backend; raises ``NvmlUnavailableError``."""
        init_nvml()
        return cls()

    @property
    def simulated(self) -> bool:
        """Always false: these are real GPUs."""
        return False

    # --- the one helper -----------------------------------------------------------------------

    def _call(
        self, call: Callable[[], _T], key: tuple[int, str] | None = None, *, strict: bool = False
    ) -> _T | None:
        """Run one NVML call and map its errors (see the module docstring).

        ``key`` names the (GPU index, metric) for the not-supported cache. With ``strict``, only a
        timeout returns ``None`` and every other soft error raises ``GpuError`` (the event wait).
        """
        if key is not None and key in self._unsupported:
            return None
        try:
            return call()
        except pynvml.NVMLError as e:
            code = _code(e)
            if code == pynvml.NVML_ERROR_TIMEOUT:
                return None
            if code == pynvml.NVML_ERROR_UNKNOWN and key is not None and self._responds(key[0]):
                log.warning("NVML call %s failed with an unknown error; GPU still responds", key)
                return None
            if code in _LOST_CODES:
                raise _HardFailure(f"GPU is lost ({_describe(e)})", lost=True) from e
            if code in _HARD_CODES:
                raise _HardFailure(_describe(e), lost=False) from e
            if code in _UNUSABLE_CODES:
                if self._closed:
                    raise GpuBackendClosedError("the NVML backend is closed") from e
                raise NvmlUnavailableError(_describe(e)) from e
            if strict:
                raise GpuError(f"NVML call failed: {_describe(e)}") from e
            if code in _UNSUPPORTED_CODES:
                if key is not None:
                    self._unsupported.add(key)
                return None
            log.debug("NVML call %s failed: %s", key, _describe(e))
            return None

    def _responds(self, index: int) -> bool:
        """Whether GPU ``index`` still answers the most basic query (memory info v1)."""
        handle = self._handles.get(index)
        if handle is None:
            return False
        try:
            pynvml.nvmlDeviceGetMemoryInfo(handle)
        except pynvml.NVMLError:
            return False
        return True

    # --- discovery ----------------------------------------------------------------------------

    def driver_version(self) -> str | None:
        """The driver version string, e.g. ``"550.54.15"``."""
        return _text(self._call(pynvml.nvmlSystemGetDriverVersion, (_EVENTS, "driver_version")))

    def discover(self) -> list[GpuIdentity]:
        """Enumerate GPUs in NVML index order; a GPU lost at discovery is listed with ``None``s."""
        self._check_open()
        count = self._call(pynvml.nvmlDeviceGetCount, strict=True) or 0
        return [self._identify(index) for index in range(int(count))]

    def _identify(self, index: int) -> GpuIdentity:
        try:
            handle = self._call(lambda: pynvml.nvmlDeviceGetHandleByIndex(index), strict=True)
            uuid = _text(self._call(lambda: pynvml.nvmlDeviceGetUUID(handle), (index, "uuid")))
            name = _text(self._call(lambda: pynvml.nvmlDeviceGetName(handle), (index, "name")))
            pci = self._call(lambda: pynvml.nvmlDeviceGetPciInfo(handle), (index, "pci"))
            memory = self._memory(index, handle)
        except NvmlUnavailableError:
            raise
        except (_HardFailure, GpuError) as e:
            failure = e if isinstance(e, _HardFailure) else _HardFailure(str(e), lost=True)
            log.warning("GPU %d failed during discovery: %s", index, failure.text)
            self._discovery_failures[index] = failure
            self._uuids[index] = None
            return GpuIdentity(index, None, None, None, None)
        self._handles[index] = handle
        self._uuids[index] = uuid
        self._handle_indices[_handle_key(handle)] = index
        return GpuIdentity(
            index=index,
            uuid=uuid,
            name=name,
            pci_bus_id=_text(getattr(pci, "busId", None)) if pci is not None else None,
            memory_total_mb=int(memory.total) // _MIB if memory is not None else None,
        )

    # --- readings -----------------------------------------------------------------------------

    def read(self, index: int) -> GpuReading:
        """Sample GPU ``index``; a lost GPU gives a reading with ``lost`` and ``error`` set."""
        self._check_open()
        now_s = time.time()
        if index in self._discovery_failures:
            failure = self._discovery_failures[index]
            return GpuReading(index, None, now_s, lost=failure.lost, error=failure.text)
        if index not in self._handles:
            raise UnknownGpuError(f"no GPU with index {index}")
        handle = self._handles[index]
        try:
            return self._read(index, handle, now_s)
        except _HardFailure as e:
            return GpuReading(index, self._uuids.get(index), now_s, lost=e.lost, error=e.text)

    def _read(self, index: int, handle: Any, now_s: float) -> GpuReading:
        def q(metric: str, call: Callable[[], _T]) -> _T | None:
            return self._call(call, (index, metric))

        util = q("utilization", lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
        memory = self._memory(index, handle)
        slowdown_c, shutdown_c = self._temperature_thresholds(index, handle)
        power_mw = q("power", lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
        limit_mw = q("power_limit", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        reasons = q("clock_events", lambda: pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
        if reasons is None:
            reasons = q(
                "clock_throttle", lambda: pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)
            )
        remapped = q("remapped_rows", lambda: pynvml.nvmlDeviceGetRemappedRows(handle))
        retired_pending = q(
            "retired_pending", lambda: pynvml.nvmlDeviceGetRetiredPagesPendingStatus(handle)
        )
        return GpuReading(
            index=index,
            uuid=self._uuids.get(index),
            sampled_at_s=now_s,
            utilization_gpu_pct=int(util.gpu) if util is not None else None,
            utilization_memory_pct=int(util.memory) if util is not None else None,
            memory_total_mb=int(memory.total) // _MIB if memory is not None else None,
            memory_used_mb=int(memory.used) // _MIB if memory is not None else None,
            memory_free_mb=int(memory.free) // _MIB if memory is not None else None,
            temperature_c=self._temperature(index, handle),
            temperature_slowdown_c=slowdown_c,
            temperature_shutdown_c=shutdown_c,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            sm_clock_mhz=q("sm_clock", lambda: self._clock(handle, pynvml.NVML_CLOCK_SM)),
            memory_clock_mhz=q("mem_clock", lambda: self._clock(handle, pynvml.NVML_CLOCK_MEM)),
            throttle_reasons=(
                decode_clock_event_reasons(int(reasons)) if reasons is not None else None
            ),
            fan_pct=q("fan", lambda: int(pynvml.nvmlDeviceGetFanSpeed(handle))),
            ecc_volatile_corrected=self._ecc(index, handle, corrected=True, volatile=True),
            ecc_volatile_uncorrected=self._ecc(index, handle, corrected=False, volatile=True),
            ecc_aggregate_corrected=self._ecc(index, handle, corrected=True, volatile=False),
            ecc_aggregate_uncorrected=self._ecc(index, handle, corrected=False, volatile=False),
            remapped_rows_correctable=int(remapped[0]) if remapped is not None else None,
            remapped_rows_uncorrectable=int(remapped[1]) if remapped is not None else None,
            remap_pending=bool(remapped[2]) if remapped is not None else None,
            remap_failure=bool(remapped[3]) if remapped is not None else None,
            retired_pages_sbe=self._retired_pages(index, handle, double_bit=False),
            retired_pages_dbe=self._retired_pages(index, handle, double_bit=True),
            retired_pages_pending=bool(retired_pending) if retired_pending is not None else None,
            recovery_action=self._recovery_action(index, handle),
        )

    @staticmethod
    def _clock(handle: Any, clock_type: int) -> int:
        return int(pynvml.nvmlDeviceGetClockInfo(handle, clock_type))

    def _memory(self, index: int, handle: Any) -> Any:
        # v2 excludes driver-reserved memory from "used"; older drivers only have v1.
        version = getattr(pynvml, "nvmlMemory_v2", None)
        if version is not None:
            memory = self._call(
                lambda: pynvml.nvmlDeviceGetMemoryInfo(handle, version=version),
                (index, "memory_v2"),
            )
            if memory is not None:
                return memory
        return self._call(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle), (index, "memory"))

    def _temperature(self, index: int, handle: Any) -> int | None:
        sensor = pynvml.NVML_TEMPERATURE_GPU
        if hasattr(pynvml, "nvmlDeviceGetTemperatureV"):
            value = self._call(
                lambda: pynvml.nvmlDeviceGetTemperatureV(handle, sensor), (index, "temperature_v")
            )
            if value is not None:
                return int(value)
        # The legacy call is deprecated ("removed in CUDA 14.0") but is all older drivers have.
        value = self._call(
            lambda: pynvml.nvmlDeviceGetTemperature(handle, sensor), (index, "temperature")
        )
        return int(value) if value is not None else None

    def _temperature_thresholds(self, index: int, handle: Any) -> tuple[int | None, int | None]:
        # Thresholds are fixed by the board: read them until both are known, then cache.
        cached = self._temperature_limits.get(index)
        if cached is not None:
            return cached
        limits = (
            self._threshold(index, handle, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, "slowdown"),
            self._threshold(index, handle, pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, "shutdown"),
        )
        if None not in limits:
            self._temperature_limits[index] = limits
        return limits

    def _threshold(self, index: int, handle: Any, which: int, label: str) -> int | None:
        value = self._call(
            lambda: pynvml.nvmlDeviceGetTemperatureThreshold(handle, which), (index, label)
        )
        return int(value) if value is not None else None

    def _ecc(self, index: int, handle: Any, *, corrected: bool, volatile: bool) -> int | None:
        error_type = (
            pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
            if corrected
            else pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
        )
        counter = pynvml.NVML_VOLATILE_ECC if volatile else pynvml.NVML_AGGREGATE_ECC
        label = f"ecc_{'vol' if volatile else 'agg'}_{'corr' if corrected else 'unc'}"
        value = self._call(
            lambda: pynvml.nvmlDeviceGetTotalEccErrors(handle, error_type, counter), (index, label)
        )
        return int(value) if value is not None else None

    def _retired_pages(self, index: int, handle: Any, *, double_bit: bool) -> int | None:
        cause = (
            pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR
            if double_bit
            else pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
        )
        label = "retired_dbe" if double_bit else "retired_sbe"
        return self._call(
            lambda: len(pynvml.nvmlDeviceGetRetiredPages(handle, cause)), (index, label)
        )

    def _recovery_action(self, index: int, handle: Any) -> str | None:
        field_id = getattr(pynvml, "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION", None)
        if field_id is None:
            return None

        def read_field() -> int:
            value = pynvml.nvmlDeviceGetFieldValues(handle, [field_id])[0]
            if value.nvmlReturn != pynvml.NVML_SUCCESS:
                # Per-field errors come back in the struct; raise them so _call maps them.
                raise pynvml.NVMLError(value.nvmlReturn)
            return int(value.value.uiVal)

        action = self._call(read_field, (index, "recovery_action"))
        return describe_recovery_action(action) if action is not None else None

    # --- XID events ---------------------------------------------------------------------------

    def open_events(self) -> dict[int, bool]:
        """Create one event set and register every GPU that supports XID critical-error events."""
        self._check_open()
        supported = dict.fromkeys(self._uuids, False)
        event_set = self._call(pynvml.nvmlEventSetCreate, (_EVENTS, "event_set"))
        if event_set is None:
            return supported
        self._event_set = event_set
        for index, handle in self._handles.items():
            try:
                supported[index] = self._register_xid_events(index, handle, event_set)
            except _HardFailure as e:
                log.warning("GPU %d cannot watch XID events: %s", index, e.text)
        return supported

    def _register_xid_events(self, index: int, handle: Any, event_set: Any) -> bool:
        xid_bit = pynvml.nvmlEventTypeXidCriticalError
        mask = self._call(
            lambda: pynvml.nvmlDeviceGetSupportedEventTypes(handle), (index, "event_types")
        )
        if mask is None or not int(mask) & xid_bit:
            return False

        def register() -> bool:
            pynvml.nvmlDeviceRegisterEvents(handle, xid_bit, event_set)
            return True

        return bool(self._call(register, (index, "register_events")))

    def wait_event(self, timeout_ms: int) -> XidEvent | None:
        """Wait up to ``timeout_ms`` for an XID; raises ``GpuError`` if the wait itself fails."""
        event_set = self._event_set
        if event_set is None or self._closed:
            raise GpuError("XID events are not registered on this backend")
        try:
            data = self._call(lambda: pynvml.nvmlEventSetWait(event_set, timeout_ms), strict=True)
        except _HardFailure as e:
            # GpuIsLost from the wait: some GPU fell off the bus; sampling will show which.
            raise GpuError(f"XID event wait failed: {e.text}") from e
        if data is None or not int(data.eventType) & pynvml.nvmlEventTypeXidCriticalError:
            return None
        return XidEvent(self._index_of(data.device), int(data.eventData), time.time())

    def _index_of(self, device: Any) -> int:
        try:
            index = self._call(lambda: pynvml.nvmlDeviceGetIndex(device))
        except _HardFailure:
            index = None
        if index is not None:
            return int(index)
        return self._handle_indices.get(_handle_key(device), -1)

    # --- lifetime -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise GpuBackendClosedError("the NVML backend is closed")

    def close(self) -> None:
        """Free the event set, then shut NVML down; only the first call does anything."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # Order matters (reference A.8): the monitor has joined the event thread already, so
        # the set can be freed, and NVML shut down last.
        event_set, self._event_set = self._event_set, None
        steps: list[tuple[str, Callable[[], Any]]] = [("nvmlShutdown", pynvml.nvmlShutdown)]
        if event_set is not None:
            steps.insert(0, ("nvmlEventSetFree", lambda: pynvml.nvmlEventSetFree(event_set)))
        for label, step in steps:
            try:
                self._call(step, strict=True)
            except (GpuError, _HardFailure) as e:
                log.warning("%s failed: %s", label, e)
