"""vidcls: efficient video classification with TSM and TimeSformer.

``vidcls.predict(videos, checkpoint, top_k=5)`` is the one-call entry point; the pieces live in
``vidcls.models``, ``vidcls.data``, ``vidcls.engine``, ``vidcls.streaming``, ``vidcls.convert``
and ``vidcls.export``.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "predict"]


def __getattr__(name: str):
    # Imported lazily so ``import vidcls`` stays cheap; the ``vidcls.predict`` module is
    # callable, so ``vidcls.predict(...)`` works whether or not it was imported first.
    if name == "predict":
        import vidcls.predict as module

        return module
    raise AttributeError(f"module 'vidcls' has no attribute {name!r}")
