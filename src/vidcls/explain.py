"""Kept for users of ``vidcls.explain``: explanations live in :mod:`vidcls.inference.explain`,
the heat-map images (``colorize``, ``overlay_heatmaps``) in :mod:`vidcls.viz`."""
from vidcls.inference.explain import (Explanation, attention_probs, attention_rollout,
                                      conv_stages, explain_clip, explain_video, grad_cam,
                                      normalize_maps, object_focus, token_groups)
from vidcls.viz import colorize, overlay_heatmaps

__all__ = ["Explanation", "attention_rollout", "grad_cam", "explain_clip", "explain_video",
           "overlay_heatmaps", "colorize", "attention_probs", "token_groups", "conv_stages",
           "object_focus", "normalize_maps"]
