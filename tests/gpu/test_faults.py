"""The CLI fault spec parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.gpu.codes import CLOCK_EVENT_NAMES
from supervisor.gpu.errors import FaultSpecError
from supervisor.gpu.faults import (
    MAX_ECC_ERRORS,
    MAX_FREE_MB,
    MAX_TEMPERATURE_C,
    MAX_XID,
    ClearFaults,
    EccFault,
    Fault,
    GpuLostFault,
    LowMemoryFault,
    RemapFailureFault,
    RemapPendingFault,
    TemperatureFault,
    ThrottleFault,
    XidFault,
    parse_fault,
)


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("xid=79", XidFault(79)),
        ("xid=48", XidFault(48)),
        ("temp=95", TemperatureFault(95)),
        ("temperature=95", TemperatureFault(95)),
        ("overheat", TemperatureFault(None)),
        ("ecc", EccFault(1)),
        ("ecc=3", EccFault(3)),
        ("lost", GpuLostFault()),
        ("mem-free=1024", LowMemoryFault(1024)),
        ("mem_free=0", LowMemoryFault(0)),
        ("remap-fail", RemapFailureFault()),
        ("remap-pending", RemapPendingFault()),
        ("throttle", ThrottleFault(("hw_power_brake_slowdown",))),
        (
            "throttle=hw_slowdown,sw-thermal-slowdown",
            ThrottleFault(("hw_slowdown", "sw_thermal_slowdown")),
        ),
        ("clear", ClearFaults()),
        ("  XID = 79 ", XidFault(79)),
        ("CLEAR", ClearFaults()),
    ],
)
def test_examples(spec: str, fault: Fault) -> None:
    assert parse_fault(spec) == fault


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "=",
        "xid",
        "xid=",
        "xid=0",
        "xid=-1",
        "xid=+5",
        "xid=1_0",
        "xid=7.5",
        "xid=0x4f",
        f"xid={MAX_XID + 1}",
        "temp=",
        "temp=hot",
        f"temp={MAX_TEMPERATURE_C + 1}",
        "ecc=0",
        "mem-free",
        "mem-free=-1",
        "lost=1",
        "clear=all",
        "throttle=",
        "throttle=fast",
        "bogus",
        "xid=٧٩",  # Arabic-Indic digits are digits to str.isdigit, not to us
    ],
)
def test_bad_specs_raise_fault_spec_error(spec: str) -> None:
    with pytest.raises(FaultSpecError, match="fault spec"):
        parse_fault(spec)


def test_fault_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_fault("nonsense")


faults = st.one_of(
    st.just(ClearFaults()),
    st.just(GpuLostFault()),
    st.just(RemapFailureFault()),
    st.just(RemapPendingFault()),
    st.builds(XidFault, st.integers(1, MAX_XID)),
    st.builds(TemperatureFault, st.none() | st.integers(0, MAX_TEMPERATURE_C)),
    st.builds(EccFault, st.integers(1, MAX_ECC_ERRORS)),
    st.builds(LowMemoryFault, st.integers(0, MAX_FREE_MB)),
    st.builds(
        ThrottleFault,
        st.lists(st.sampled_from(sorted(CLOCK_EVENT_NAMES)), min_size=1, max_size=4).map(tuple),
    ),
)


@given(faults)
def test_spec_round_trips(fault: Fault) -> None:
    assert parse_fault(fault.spec) == fault


@given(faults, st.sampled_from(["", " ", "\t"]), st.booleans())
def test_blanks_and_case_do_not_matter(fault: Fault, pad: str, upper: bool) -> None:
    spec = fault.spec.upper() if upper else fault.spec
    assert parse_fault(pad + spec + pad) == fault


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_fault_spec_error(text: str) -> None:
    try:
        fault = parse_fault(text)
    except FaultSpecError:
        return
    assert parse_fault(fault.spec) == fault


@given(st.from_regex(r"(xid|temp|ecc|mem-free)=-?[0-9]{0,12}", fullmatch=True))
def test_numbers_are_range_checked(text: str) -> None:
    try:
        fault = parse_fault(text)
    except FaultSpecError:
        return
    assert parse_fault(fault.spec) == fault
