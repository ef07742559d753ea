"""Fixtures shared by the kernel tests."""

from __future__ import annotations

import pytest

from grass.kernels import sjlt_cpu


@pytest.fixture(scope="session")
def cpp():
    """The C++ op; a build failure fails the tests (ninja and a C++ compiler are project requirements)."""
    op, reason = sjlt_cpu.extension()
    if op is None:
        pytest.fail(f"C++ SJLT kernel did not build: {reason}")
    return sjlt_cpu.sjlt_forward
