"""Kept for users of ``vidcls.streaming.OnlineTSM``: online TSM lives in
:mod:`vidcls.models.online_tsm`."""
from vidcls.models.online_tsm import OnlineTSM, check_streamable

__all__ = ["OnlineTSM", "check_streamable"]
