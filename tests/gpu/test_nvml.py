"""The real NVML backend, driven through a patched pynvml (no GPU or driver on the test machine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pynvml
import pytest

from supervisor.gpu import nvml
from supervisor.gpu.backend import open_gpu_backend
from supervisor.gpu.errors import GpuBackendClosedError, GpuError, NvmlUnavailableError
from supervisor.gpu.nvml import NvmlBackend

if TYPE_CHECKING:
    from conftest import FakeDriver


def test_missing_driver_library_raises_the_clear_no_nvml_error(no_nvidia_driver: None) -> None:
    # Nothing is patched: on this machine libnvidia-ml.so.1 does not exist.
    with pytest.raises(NvmlUnavailableError) as info:
        open_gpu_backend(None)
    assert "libnvidia-ml.so.1" in str(info.value)
    assert "driver" in info.value.reason
    assert isinstance(info.value.__cause__, pynvml.NVMLError_LibraryNotFound)


@pytest.mark.parametrize(
    ("error", "needle"),
    [
        (pynvml.NVMLError_DriverNotLoaded(), "driver is not loaded"),
        (pynvml.NVMLError_LibRmVersionMismatch(), "versions differ"),
        (pynvml.NVMLError_NoPermission(), "permission"),
        (pynvml.NVMLError_Unknown(), "nvmlInit failed"),
    ],
)
def test_init_failures_map_to_no_nvml(
    monkeypatch: pytest.MonkeyPatch, error: Exception, needle: str
) -> None:
    def fail() -> None:
        raise error

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    with pytest.raises(NvmlUnavailableError, match=needle):
        NvmlBackend.open()


def test_missing_pynvml_package_raises_the_clear_no_nvml_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "supervisor.gpu.nvml", None)  # import now fails
    with pytest.raises(NvmlUnavailableError, match="nvidia-ml-py"):
        open_gpu_backend(None)


def test_importing_the_gpu_package_does_not_load_pynvml() -> None:
    code = (
        "import sys, supervisor.gpu, supervisor.gpu.monitor, supervisor.sim.gpu;"
        "assert 'pynvml' not in sys.modules, 'pynvml was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_discovery_reads_identity(driver: FakeDriver) -> None:
    backend = NvmlBackend.open()
    gpus = backend.discover()
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert gpus[0].uuid == driver.devices[0].uuid
    assert gpus[1].pci_bus_id == "00000000:28:00.0"  # bytes from the struct are decoded
    assert gpus[0].memory_total_mb == 81559
    assert backend.driver_version() == "550.54.15"
    assert backend.simulated is False


def test_reading_maps_units_and_decodes_reasons(driver: FakeDriver) -> None:
    d = driver.devices[0]
    d.used_mb, d.util_gpu, d.power_mw, d.clock_reasons = 20000, 97, 455_500, 0x4 | 0x40
    d.ecc[(pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC)] = 2
    d.remapped = (3, 1, 1, 0)
    backend = NvmlBackend.open()
    backend.discover()
    r = backend.read(0)
    assert (r.memory_used_mb, r.memory_free_mb, r.memory_total_mb) == (20000, 61559, 81559)
    assert r.utilization_gpu_pct == 97
    assert r.power_w == 455.5 and r.power_limit_w == 700.0
    assert r.temperature_slowdown_c == 90 and r.temperature_shutdown_c == 95
    assert r.throttle_reasons == ("sw_power_cap", "hw_thermal_slowdown")
    assert r.ecc_volatile_uncorrected == 2 and r.ecc_aggregate_uncorrected == 0
    assert (r.remapped_rows_correctable, r.remapped_rows_uncorrectable) == (3, 1)
    assert r.remap_pending is True and r.remap_failure is False
    assert r.retired_pages_sbe == 0 and r.retired_pages_pending is False
    assert r.recovery_action == "none"
    assert r.sm_clock_mhz == 345 and r.memory_clock_mhz == 2619
    assert not r.failed


def test_not_supported_reads_as_none_never_zero_and_is_not_asked_again(
    driver: FakeDriver,
) -> None:
    driver.fail("nvmlDeviceGetFanSpeed", pynvml.NVMLError_NotSupported())
    driver.fail("nvmlDeviceGetTotalEccErrors", pynvml.NVMLError_NotSupported(), index=1)
    backend = NvmlBackend.open()
    backend.discover()
    first = backend.read(1)
    assert first.fan_pct is None
    assert first.ecc_volatile_uncorrected is None and first.ecc_aggregate_corrected is None
    assert first.to_json_dict()["fan_pct"] is None
    assert backend.read(0).ecc_volatile_uncorrected == 0  # only GPU 1 lacks ECC
    calls = driver.calls["nvmlDeviceGetFanSpeed"]
    backend.read(1)
    assert driver.calls["nvmlDeviceGetFanSpeed"] == calls  # cached after the first NotSupported


def test_function_not_found_falls_back_to_the_legacy_call(driver: FakeDriver) -> None:
    driver.fail("nvmlDeviceGetTemperatureV", pynvml.NVMLError_FunctionNotFound())
    driver.fail("nvmlDeviceGetCurrentClocksEventReasons", pynvml.NVMLError_FunctionNotFound())
    backend = NvmlBackend.open()
    backend.discover()
    r = backend.read(0)
    assert r.temperature_c == 33
    assert r.throttle_reasons == ("gpu_idle",)
    assert driver.calls["nvmlDeviceGetTemperature"] == 1


def test_transient_errors_read_as_none_for_that_sample_only(driver: FakeDriver) -> None:
    driver.fail("nvmlDeviceGetPowerUsage", pynvml.NVMLError_NoData())
    backend = NvmlBackend.open()
    backend.discover()
    assert backend.read(0).power_w is None
    del driver.errors[("nvmlDeviceGetPowerUsage", None)]
    assert backend.read(0).power_w == 71.0


def test_per_field_errors_of_field_values_are_mapped(
    driver: FakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = NvmlBackend.open()
    backend.discover()
    driver.devices[0].recovery_action = 1
    assert backend.read(0).recovery_action == "gpu_reset"

    def not_supported(h: object, ids: list[int]) -> list[object]:
        return [SimpleNamespace(nvmlReturn=pynvml.NVML_ERROR_NOT_SUPPORTED, value=None)]

    monkeypatch.setattr(pynvml, "nvmlDeviceGetFieldValues", not_supported)
    assert backend.read(1).recovery_action is None


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (pynvml.NVMLError_GpuIsLost(), True),
        (pynvml.NVMLError_Unknown(), True),
        (pynvml.NVMLError_ResetRequired(), False),
        (pynvml.NVMLError_CorruptedInforom(), False),
    ],
)
def test_hard_failures_make_the_whole_reading_failed(
    driver: FakeDriver, error: Exception, lost: bool
) -> None:
    backend = NvmlBackend.open()
    backend.discover()
    driver.fail("nvmlDeviceGetUtilizationRates", error, index=1)
    driver.fail("nvmlDeviceGetMemoryInfo", error, index=1)
    r = backend.read(1)
    assert r.failed and r.lost is lost and r.error
    assert r.utilization_gpu_pct is None and r.temperature_c is None
    assert r.uuid == driver.devices[1].uuid
    assert not backend.read(0).failed  # one bad GPU does not hide the others


def test_unknown_error_from_one_metric_of_a_responsive_gpu_is_not_lost(
    driver: FakeDriver,
) -> None:
    backend = NvmlBackend.open()
    backend.discover()
    driver.fail("nvmlDeviceGetFanSpeed", pynvml.NVMLError_Unknown(), index=0)
    r = backend.read(0)
    assert not r.failed and r.fan_pct is None and r.temperature_c == 33


def test_gpu_lost_at_discovery_is_listed_and_reads_as_lost(driver: FakeDriver) -> None:
    driver.fail("nvmlDeviceGetHandleByIndex", pynvml.NVMLError_GpuIsLost(), index=1)
    backend = NvmlBackend.open()
    gpus = backend.discover()
    assert gpus[1].uuid is None and gpus[1].name is None
    r = backend.read(1)
    assert r.lost and "lost" in (r.error or "")


def test_xid_events_register_and_arrive(driver: FakeDriver) -> None:
    backend = NvmlBackend.open()
    backend.discover()
    assert backend.open_events() == {0: True, 1: True}
    assert driver.registered == [0, 1]
    assert backend.wait_event(10) is None  # NVMLError_Timeout means "nothing yet"
    driver.push_xid(1, 79)
    event = backend.wait_event(1000)
    assert event is not None and (event.gpu_index, event.xid) == (1, 79)


def test_gpus_without_xid_event_support_are_reported(driver: FakeDriver) -> None:
    driver.supported_events = pynvml.nvmlEventTypePState
    backend = NvmlBackend.open()
    backend.discover()
    assert backend.open_events() == {0: False, 1: False}
    assert driver.registered == []


def test_event_wait_failure_raises_gpu_error(driver: FakeDriver) -> None:
    backend = NvmlBackend.open()
    backend.discover()
    backend.open_events()
    driver.fail("nvmlEventSetWait", pynvml.NVMLError_GpuIsLost())
    with pytest.raises(GpuError, match="lost"):
        backend.wait_event(10)


def test_close_frees_the_event_set_then_shuts_down_once(driver: FakeDriver) -> None:
    backend = NvmlBackend.open()
    backend.discover()
    backend.open_events()
    backend.close()
    backend.close()
    assert driver.log == ["init", "free", "shutdown"]
    with pytest.raises(GpuBackendClosedError):
        backend.read(0)


def test_nvml_py_is_the_only_module_that_imports_pynvml() -> None:
    root = Path(__file__).resolve().parents[2]
    imports_pynvml = re.compile(r"^\s*(import|from)\s+pynvml\b", re.MULTILINE)
    importers = [
        path.relative_to(root).as_posix()
        for package in ("fleetq", "supervisor", "tui", "scripts")
        if (root / package).exists()
        for path in (root / package).rglob("*.py")
        if imports_pynvml.search(path.read_text(encoding="utf-8"))
    ]
    assert importers == ["supervisor/gpu/nvml.py"]
    assert nvml.__name__ == "supervisor.gpu.nvml"
