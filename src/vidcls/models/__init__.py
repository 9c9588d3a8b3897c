"""Video classification models: TSN, TSM (offline and online) and TimeSformer."""
from vidcls.models.factory import create_model, list_models

__all__ = ["create_model", "list_models"]
