"""Model precision: which dtype to run in, and the fp32 islands kept inside a reduced-precision model.

bf16 matmuls run at ~2.5-3x the fp32 rate on CPUs with AVX512-BF16 or AMX-BF16 and on every recent GPU, so the
transformer trunks (VAE, generator, visibility head) may run in bf16. Track coordinates never do (README: "Track
coordinates in fp32 always"): normalisation, Grid-Anchor offsets, anchors and the ODE state stay fp32, and so do the
small layers that take coordinates in or give them out (the models list them in ``_keep_in_fp32_modules``; bf16's
8-bit mantissa would round an output offset of 0.5 to 2e-3, i.e. ~0.8 px at 832 px).

    resolve_dtype("auto", "cpu")        # torch.bfloat16 where the CPU has bf16 matmul instructions, else float32
    model.to(torch.bfloat16)            # trunk in bf16, `_keep_in_fp32_modules` stay fp32
"""

from __future__ import annotations

import functools

# names only (no torch import here: the CLI builds its parser from these without loading torch)
DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
               "float16": "float16", "fp16": "float16"}
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16")  # the CLI's --dtype


def dtype_name(dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (for logs and meta files)."""
    return str(dtype).replace("torch.", "")


def _cpu_flags() -> set:
    """The Linux ``/proc/cpuinfo`` feature flags (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU executes bf16 matmuls natively (AMX-BF16 or AVX512-BF16; oneDNN uses either).

    ``torch.backends.cpu.get_cpu_capability()`` reports ``AMX``/``AVX512_BF16`` on some builds; others say only
    ``AVX512``, so the ``/proc/cpuinfo`` flags ``amx_bf16`` / ``avx512_bf16`` are read as well.
    """
    import torch

    try:
        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    except (AttributeError, RuntimeError):
        capability = ""
    return "AMX" in capability or "BF16" in capability or bool(_cpu_flags() & {"amx_bf16", "avx512_bf16"})


def bf16_supported(device) -> bool:
    """Whether bf16 is fast on ``device`` (CUDA: ``torch.cuda.is_bf16_supported()``; CPU: :func:`cpu_has_bf16_matmul`)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_bf16_matmul()
    return False


def resolve_dtype(name, device="cpu"):
    """``"auto"`` -> bf16 where :func:`bf16_supported` on ``device`` else fp32; ``"float32"``/``"fp32"``,
    ``"bfloat16"``/``"bf16"``, ``"float16"``/``"fp16"`` or a floating ``torch.dtype`` -> that ``torch.dtype``."""
    import torch

    if isinstance(name, torch.dtype):
        if not name.is_floating_point:
            raise ValueError(f"`dtype` must be a floating-point dtype, got {name}")
        return name
    if name == "auto":
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    if name not in DTYPE_NAMES:
        raise ValueError(f"`dtype` must be 'auto' or one of {sorted(DTYPE_NAMES)}, got {name!r}")
    return getattr(torch, DTYPE_NAMES[name])


def _in_fp32_island(name: str, keep) -> bool:
    # the substring rule diffusers applies to `_keep_in_fp32_modules` when loading (modeling_utils)
    return any(k in name for k in keep)


class KeepFP32ModulesMixin:
    """For ``ModelMixin`` subclasses: ``model.to(dtype)`` casts every floating tensor to ``dtype`` except those of
    the modules named in ``_keep_in_fp32_modules``, which stay fp32 (``from_pretrained(torch_dtype=...)`` does the
    same through diffusers). diffusers' own ``to`` casts them too and warns about it."""

    _keep_in_fp32_modules = None

    def to(self, *args, **kwargs):
        import torch

        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        keep = tuple(self._keep_in_fp32_modules or ())
        if dtype is None or not keep:
            if dtype is None:
                return super().to(*args, **kwargs)
            return torch.nn.Module.to(self, *args, **kwargs)  # no fp32 islands: plain cast, no spurious warning
        if not (dtype.is_floating_point or dtype.is_complex):
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired dtype={dtype}")
        if device is not None:
            super().to(device=device, non_blocking=non_blocking)
        for name, module in self.named_modules():
            target = torch.float32 if _in_fp32_island(name, keep) else dtype
            module._apply(lambda t, target=target: t.to(target) if t.is_floating_point() else t, recurse=False)
        return self


def autocast_off(device_type: str):
    """A context that turns autocast off on ``device_type`` if it is on (else a no-op): the fp32 islands stay fp32
    under ``torch.autocast`` / Accelerate's ``--mixed_precision`` too, which would otherwise run every Linear in bf16."""
    import contextlib

    import torch

    try:
        on = torch.is_autocast_enabled(device_type)
    except (TypeError, RuntimeError):  # a device type autocast does not know
        on = False
    return torch.autocast(device_type=device_type, enabled=False) if on else contextlib.nullcontext()
