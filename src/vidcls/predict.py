"""Kept for users: prediction lives in :mod:`vidcls.inference.predict`.

``from vidcls.predict import Predictor, predict`` keeps working, and so does calling the module,
``vidcls.predict(videos, checkpoint)``: ``import vidcls.predict`` binds this module as the
attribute ``vidcls.predict``, so the module itself must be callable for that call to work.
"""
import sys
import types

from vidcls.inference.predict import Predictor, format_predictions, predict

__all__ = ["predict", "Predictor", "format_predictions"]


class _CallableModule(types.ModuleType):
    """``vidcls.predict(...)`` is ``vidcls.inference.predict.predict(...)``."""

    def __call__(self, *args, **kwargs):
        return predict(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
