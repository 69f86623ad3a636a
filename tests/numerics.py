"""Float comparisons with tolerances from the dtype, so numerical tests hold on any CPU.

Two runs of the same maths differ by rounding once their sums are taken in another order (other
CPUs, other kernels, padded batches, cached activations). One rounding is at most ``eps`` relative;
a reordered sum of n terms drifts by about ``sqrt(n) * eps``, so ``ULPS`` = 64 eps covers sums of a few
thousand terms (the tiny models' widths) with room to spare. A comparison whose values went through
several such stages (layers, optimiser steps) says so with ``stages``, and the tolerance grows
linearly with it. ``atol`` equals ``rtol``: the values compared are of order one (logits, weights),
and the absolute part covers those that cancel to near zero.
"""

from __future__ import annotations

import torch

ULPS = 64


def tolerances(dtype: torch.dtype, *, stages: int = 1) -> tuple[float, float]:
    """(rtol, atol) for values of ``dtype`` computed through ``stages`` reorderable stages; integers
    and booleans compare exactly."""
    if stages < 1:
        raise ValueError(f"stages must be at least 1, got {stages}")
    if not dtype.is_floating_point:
        return 0.0, 0.0
    tolerance = ULPS * torch.finfo(dtype).eps * stages
    return tolerance, tolerance


def assert_close(
    actual, expected, *, dtype: torch.dtype | None = None, stages: int = 1, name: str = ""
) -> None:
    """``torch.testing.assert_close`` with dtype-derived tolerances; the failure message keeps
    torch's greatest absolute and relative differences and adds ``name`` and the tolerances."""
    if dtype is None:
        dtype = expected.dtype if isinstance(expected, torch.Tensor) else torch.float64
    rtol, atol = tolerances(dtype, stages=stages)
    label = f"{name}: " if name else ""
    torch.testing.assert_close(
        actual,
        expected,
        rtol=rtol,
        atol=atol,
        msg=lambda message: (
            f"{label}{message}\n(tolerances for {dtype}, {stages} stage(s): rtol=atol={rtol:.2e})"
        ),
    )
