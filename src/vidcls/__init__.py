"""vidcls: efficient video classification with TSM and TimeSformer."""

__version__ = "0.1.0"

__all__ = ["__version__"]
