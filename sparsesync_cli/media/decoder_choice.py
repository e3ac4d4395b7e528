"""``--decoder auto|cpu|gpu``: which decoder reads the files, checked before any model loads.

This version decodes on the CPU only (PyAV's FFmpeg, in this process or in decode worker
processes). NVIDIA's hardware decoder (NVDEC, through the ``pynvvideocodec`` wheel) is not wired
in yet: it has not been run on a GPU machine, so ``gpu`` is refused with one line rather than
half-working. ``auto`` is the CPU decoder.
"""

from __future__ import annotations

from ..errors import UsageError

DECODERS = ("auto", "cpu", "gpu")


def resolve_decoder(decoder: str, device: str) -> str:
    """The decoder to use (``"cpu"``) for ``--decoder`` and the model's ``--device``.

    ``device`` is the option as given (``auto``, ``cpu``, ``cuda``, ``cuda:N``); ``auto`` counts as
    CUDA when torch sees a CUDA device. Raises :class:`UsageError` (exit 2) for ``gpu``: without
    CUDA it cannot work, and with CUDA this version has no NVDEC path.
    """
    if decoder not in DECODERS:
        raise UsageError(f"--decoder {decoder}: expected one of {', '.join(DECODERS)}")
    if decoder != "gpu":
        return "cpu"
    cuda = device.startswith("cuda")
    if device == "auto":
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        shown = "cpu (no CUDA device here)" if device == "auto" else device
        raise UsageError(f"--decoder gpu: the GPU decoder needs CUDA (--device cuda), not --device {shown}")
    raise UsageError(
        "--decoder gpu: NVDEC decoding is not available in this version of avsync; "
        "use --decoder cpu with --decode-workers to feed the GPU"
    )
