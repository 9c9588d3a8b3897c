"""vidcls: efficient video classification with TSM and TimeSformer.

One-call entry points:

* ``vidcls.load_model("tsm-r50-kinetics400")`` -- a published model by name (``vidcls models``
  lists them; downloaded, verified, converted and cached on first use) or a checkpoint
  directory, ready to use: ``model.classes``, ``model.preprocessing``, ``eval()`` mode;
* ``vidcls.create_model("tsm_resnet50", pretrained="tsm-r50-kinetics400", num_classes=10)`` --
  :func:`vidcls.models.create_model`, where ``pretrained`` may also name a published model
  (e.g. to fine-tune it);
* ``vidcls.predict(videos, checkpoint, top_k=5)``.

The pieces live in ``vidcls.models``, ``vidcls.data``, ``vidcls.engine``, ``vidcls.zoo``,
``vidcls.streaming``, ``vidcls.convert`` and ``vidcls.export``. This facade is the one place
that joins the zoo (layer 5) to model building (layer 2), which must not know about downloads.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "predict", "load_model", "create_model"]


def load_model(source, *, device: str = "cpu", offline: bool | None = None,
               progress: bool = True):
    """A ready model from a checkpoint directory or a published model's name."""
    from pathlib import Path

    from vidcls.engine.checkpoint import load_model as load_checkpoint
    from vidcls.zoo import checkpoint_dir, is_zoo_name

    if is_zoo_name(str(source)) and not Path(source).exists():
        source = checkpoint_dir(str(source), offline=offline, progress=progress)
    model, _ = load_checkpoint(source, device=device)
    return model


def create_model(name: str, *, pretrained=None, offline: bool | None = None, **kwargs):
    """:func:`vidcls.models.create_model`, with ``pretrained`` also accepting a published
    model's name. For the published model's own architecture, its build options (classes,
    frames, shift, ...) are the defaults that ``kwargs`` override, and with the same classes
    the model keeps its class names and preprocessing; another class count re-initialises the
    head (fine-tuning), as for any ``pretrained`` file."""
    from pathlib import Path

    from vidcls.models import create_model as build
    from vidcls.zoo import checkpoint_dir, is_zoo_name

    if pretrained is None or not is_zoo_name(str(pretrained)) or Path(pretrained).exists():
        return build(name, pretrained=pretrained, **kwargs)
    from vidcls.engine.checkpoint import read_meta, read_preprocessing

    ckpt = checkpoint_dir(str(pretrained), offline=offline)
    meta = read_meta(ckpt)
    options = dict(meta["model"])
    same_arch = options.pop("name") == name
    model = build(name, pretrained=ckpt, **({**options, **kwargs} if same_arch else kwargs))
    if same_arch and model.num_classes == meta["model"]["num_classes"]:
        model.classes = list(meta.get("classes", []))
        model.preprocessing = read_preprocessing(meta, model)
    return model


def __getattr__(name: str):
    # Imported lazily so ``import vidcls`` stays cheap; the ``vidcls.predict`` module is
    # callable, so ``vidcls.predict(...)`` works whether or not it was imported first.
    if name == "predict":
        import vidcls.predict as module

        return module
    raise AttributeError(f"module 'vidcls' has no attribute {name!r}")
