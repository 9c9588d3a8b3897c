"""Video classifiers: ``create_model(name, ...)`` over the registered builders (TSN / TSM in
:mod:`.tsn`, TimeSformer in :mod:`.timesformer`), the model card (:class:`Preprocessing`) and
frame-by-frame streaming (:class:`OnlineTSM`)."""
from vidcls.models import timesformer, tsn  # noqa: F401  (importing registers the builders)
from vidcls.models._preprocessing import IMAGENET, INCEPTION, TIMESFORMER, Preprocessing
from vidcls.models._registry import (create_model, get_builder, list_models, load_pretrained,
                                     register_model)
from vidcls.models.online_tsm import OnlineTSM, check_streamable

__all__ = ["create_model", "list_models", "get_builder", "register_model", "load_pretrained",
           "Preprocessing", "IMAGENET", "TIMESFORMER", "INCEPTION", "OnlineTSM", "check_streamable"]
