"""The one device and precision policy: CUDA when present, fp16/bf16 autocast only where it pays."""

from __future__ import annotations

import contextlib
import os
import warnings

import torch

from .errors import WaveGradError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None` or "auto" -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's AVX512/AMX kernels) rather than emulating it."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast_dtype(device: torch.device, precision: str = "auto", use_fp16: bool = True) -> torch.dtype | None:
    """The autocast dtype for `precision` ("auto", "fp32", "fp16", "bf16"), or None for fp32.

    "auto" is fp16 on CUDA when `use_fp16`, else fp32. fp16 on CPU falls back to fp32 with a warning;
    bf16 on a CPU without native bf16 (AVX512 or AMX) warns that it is emulated and slow.
    """
    if precision == "auto":
        precision = "fp16" if use_fp16 and device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        warnings.warn("fp16 needs CUDA; using fp32 on CPU", stacklevel=2)
        precision = "fp32"
    if precision == "bf16" and device.type == "cpu" and not native_cpu_bf16():
        warnings.warn("bf16 on this CPU is emulated (no AVX512 or AMX bf16) and runs many times slower than fp32; "
                      "choose fp32", stacklevel=2)
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast context for `dtype`, a no-op when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_threads() -> int:
    """The CPU threads a command may use: OMP_NUM_THREADS when set (the user's cap; torchrun sets it to 1),
    else every core this process may run on (torch's default may count SMT siblings)."""
    cap = os.environ.get("OMP_NUM_THREADS", "")
    if cap.isdigit() and int(cap) > 0:
        return int(cap)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_cpu_threads(threads: int | None = None) -> None:
    """Intra-op threads on CPU: `threads`, else `cpu_threads()`."""
    torch.set_num_threads(threads or cpu_threads())


class NonFiniteSteps:
    """Counts optimiser steps skipped for a non-finite loss or gradient (fp16 overflow, a bad batch);
    `limit` of them in a row stop training with a WaveGradError."""

    def __init__(self, limit: int, total: int = 0):
        self.limit, self.total, self.in_a_row = limit, total, 0

    def record(self, finite: bool, where: str, fix: str) -> None:
        """Count one step; the error reads "{where}: N steps in a row had a non-finite loss or gradient; {fix}"."""
        self.in_a_row = 0 if finite else self.in_a_row + 1
        self.total += not finite
        if self.in_a_row >= self.limit:
            raise WaveGradError(f"{where}: {self.in_a_row} steps in a row had a non-finite loss or gradient; {fix}")
