"""The TSM authors' shift formulation (``TemporalShift.shift`` of mit-han-lab/temporal-shift-module,
written from its description): a full zero buffer, then three slice copies. An independent
oracle for :func:`vidcls.ops.temporal_shift`, and the baseline of ``benchmarks/bench_tsm.py``."""
import torch


def temporal_shift_reference_style(x: torch.Tensor, num_frames: int, shift_div: int = 8) -> torch.Tensor:
    """The TSM authors' formulation (full zero buffer, then three copies)."""
    channels, height, width = x.shape[1:]
    x5 = x.reshape(-1, num_frames, channels, height, width)  # (N, T, C, H, W)
    fold = channels // shift_div
    out = torch.zeros_like(x5)
    out[:, :-1, :fold] = x5[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = x5[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = x5[:, :, 2 * fold:]
    return out.reshape(x.shape)  # (N*T, C, H, W)


