"""What benchmarks record about the machine: a CPU named precisely enough to tell two cloud VMs apart."""

from __future__ import annotations

import pytest
from simd_levels import highest_level, simd_level

from vlfast.machine import cpu_flags, cpu_model, describe_cpu, machine_info

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 167
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu avx2

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 106
model name\t: Other
"""


def test_an_x86_cpu_is_named_with_its_family_and_model():
    assert describe_cpu(XEON) == "Intel(R) Xeon(R) Processor (family 6 model 167)"


def test_a_cpu_without_family_numbers_keeps_its_name():
    assert describe_cpu("processor\t: 0\nmodel name\t: ARMv8 Processor rev 1 (v8l)\n") == "ARMv8 Processor rev 1 (v8l)"
    assert describe_cpu("processor\t: 0\nCPU part\t: 0xd0c\n") == ""


def test_machine_info_names_this_cpu():
    assert machine_info()["cpu"] == cpu_model() != ""


def test_machine_info_names_the_kernels_simd_level():
    """Every benchmark records which kernels ran: the level in force now, and the CPU's where it is capped."""
    pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
    highest = highest_level()
    assert machine_info()["cpu_kernels"] == highest
    with simd_level("portable"):
        capped = "portable" if highest == "portable" else f"portable (capped; this CPU has {highest})"
        assert machine_info()["cpu_kernels"] == capped


def test_flags_are_the_first_processors():
    assert cpu_flags(XEON) == {"fpu", "avx2"}
    assert cpu_flags("processor\t: 0\nmodel name\t: ARMv8\n") == set()
