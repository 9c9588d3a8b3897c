"""Tensor operations shared by the models: the TSM temporal shift."""
from vidcls.ops.temporal_shift import SHIFT_MODES, TemporalShift, shift_fold, temporal_shift

__all__ = ["SHIFT_MODES", "TemporalShift", "shift_fold", "temporal_shift"]
