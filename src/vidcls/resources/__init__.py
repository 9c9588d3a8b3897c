"""Class-name lists that ship with vidcls, so converted checkpoints predict named classes.

* ``kinetics400``: the 400 Kinetics-400 action names in the order of the official checkpoints
  (TSM, TimeSformer, mmaction2, PaddleVideo): the label strings of the Kinetics CSVs sorted
  alphabetically, ignoring case ("abseiling", "air drumming", ..., "zumba").
* ``jester``: the 27 20BN-Jester gestures in label order (the TSM authors' online demo,
  ``mobilenetv2_jester_online.pth.tar``; mmaction2's Jester order differs).
* ``sthv2``: the 174 Something-Something V2 templates in the index order of 20BN's
  ``something-something-v2-labels.json`` (mmaction2 ``tools/data/sthv2/label_map.txt``), which
  the TSM authors, the TimeSformer authors and mmaction2 all train with.
* ``sthv1``: the 174 Something-Something V1 labels in the TSM authors' order (``sorted()`` of
  20BN's label CSV, ``tools/gen_label_sthv1.py``).
* ``kinetics600``: the 600 Kinetics-600 names, alphabetical (mmaction2's
  ``label_map_k600.txt``), the order of the TimeSformer authors' K600 models as far as it
  could be checked (HF's fixed id2label agrees on every name compared).
"""
from __future__ import annotations

from importlib import resources

__all__ = ["class_names", "DATASETS", "dataset_for_num_classes"]

#: dataset name -> (file in this package, number of classes)
DATASETS = {"kinetics400": ("kinetics400_classes.txt", 400), "jester": ("jester_classes.txt", 27),
            "sthv2": ("sthv2_classes.txt", 174), "sthv1": ("sthv1_classes.txt", 174),
            "kinetics600": ("kinetics600_classes.txt", 600)}


def class_names(dataset: str) -> list[str]:
    """The class names of a known dataset (see ``DATASETS``), one per class index."""
    try:
        filename, count = DATASETS[dataset]
    except KeyError:
        raise ValueError(f"no class list for {dataset!r}; known: {', '.join(DATASETS)} "
                         "(pass your own list of names instead)") from None
    text = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    names = [line for line in text.splitlines() if line.strip()]
    if len(names) != count:  # a damaged install must not silently shift every label
        raise RuntimeError(f"{filename} holds {len(names)} names, expected {count}")
    return names


def dataset_for_num_classes(num_classes: int, hint: str = "") -> str | None:
    """Guess the dataset of a checkpoint from its class count and a name hint (file name,
    e.g. ``TSM_kinetics_RGB_...``): only unambiguous cases, otherwise None."""
    hint = hint.lower()
    if num_classes == 400 and ("kinetics" in hint or "k400" in hint or not hint):
        return "kinetics400"
    if num_classes == 27 and ("jester" in hint or not hint):
        return "jester"
    return None
