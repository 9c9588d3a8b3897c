"""One published checkpoint, as data: :class:`ZooEntry`.

The zoo is a table of these records (:mod:`vidcls.zoo.catalog`), not code per model: where the
file lives, which converter reads it and with which options, what it was trained on, and what
its authors report for it under which test protocol. Everything else (download, verification,
conversion, caching) is the same for every entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ZooEntry", "Protocol"]


@dataclass(frozen=True)
class Protocol:
    """The test protocol behind a reported accuracy: how many clips and crops per video were
    averaged, at which crop size. ``vidcls eval`` with the same views reproduces it."""

    clips: int
    crops: int
    crop_size: int

    def __str__(self) -> str:
        return f"{self.clips} clip{'s' if self.clips > 1 else ''} x {self.crops} crop" \
               f"{'s' if self.crops > 1 else ''}, {self.crop_size} px"


@dataclass(frozen=True)
class ZooEntry:
    """A published checkpoint that ``vidcls`` downloads, checks, converts and caches by name.

    Exactly one of ``url`` (a direct download) and ``hf_repo`` (a Hugging Face hub repository,
    fetched through ``huggingface_hub``) says where the weights are; ``url=None`` with
    ``hf_repo=None`` marks an entry whose download address could not be confirmed from its
    source (listed, never downloaded). ``confirmed`` says where the address was read.
    """

    name: str                       # the vidcls name: ``--model NAME``
    model: str                      # what it is, for the table ("TSM ResNet-50")
    architecture: str               # the vidcls builder the conversion yields (tsm_resnet50)
    dataset: str                    # kinetics400, sthv2, jester, ... (vidcls.resources names)
    num_classes: int
    num_frames: int
    input_size: int
    format: str                     # the vidcls.convert format that reads the file
    source: str                     # who published it
    page: str                       # where it is listed (README / model-zoo page)
    confirmed: str                  # where the address was read, verbatim
    license: str
    url: str | None = None
    hf_repo: str | None = None
    hf_files: tuple[str, ...] = ()  # files of the hub repository the converter needs
    sha256: str | None = None       # the whole digest, where the source publishes it
    sha256_prefix: str | None = None  # mmaction2: file names end in the digest's first 8 hex
    options: dict[str, Any] = field(default_factory=dict)  # the converter's keyword arguments
    # what the converted model is built with besides classes and frames (shift_div, attention,
    # ...): read by the converter from the file; the zoo tests check the two agree
    architecture_options: dict[str, Any] = field(default_factory=dict)
    top1: float | None = None       # as the source reports it
    top5: float | None = None
    protocol: Protocol | None = None
    sampling: str = ""              # "segment", "dense 8x8", ... (for the table)
    params_m: float | None = None   # parameters, millions
    size_mb: float | None = None    # download size, MB
    classes_in_file: bool = False   # the file names its classes (HF id2label): no shipped list
    note: str = ""

    def __post_init__(self):
        if self.url is not None and self.hf_repo is not None:
            raise ValueError(f"zoo entry {self.name}: give url or hf_repo, not both")
        if self.hf_repo is not None and not self.hf_files:
            raise ValueError(f"zoo entry {self.name}: hf_repo needs hf_files")

    @property
    def downloadable(self) -> bool:
        return self.url is not None or self.hf_repo is not None

    @property
    def filename(self) -> str:
        """The file name the source gives the weights (the converters read settings from it,
        e.g. the TSM authors' ``..._shift8_blockres_avg_segment8_e50.pth``)."""
        if self.url is None:
            raise ValueError(f"zoo entry {self.name} has no download URL")
        return PurePosixPath(urlsplit(self.url).path).name

    @property
    def where(self) -> str:
        """The source's address, for messages: the URL or ``hf://repo``."""
        return self.url or (f"hf://{self.hf_repo}" if self.hf_repo else "(no confirmed URL)")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (``vidcls models --json``)."""
        return {
            "name": self.name, "model": self.model, "architecture": self.architecture,
            "architecture_options": dict(self.architecture_options), "dataset": self.dataset,
            "num_classes": self.num_classes, "num_frames": self.num_frames,
            "input_size": self.input_size, "format": self.format, "options": dict(self.options),
            "url": self.url, "hf_repo": self.hf_repo, "hf_files": list(self.hf_files),
            "downloadable": self.downloadable, "sha256": self.sha256,
            "sha256_prefix": self.sha256_prefix, "top1": self.top1, "top5": self.top5,
            "protocol": None if self.protocol is None else {
                "clips": self.protocol.clips, "crops": self.protocol.crops,
                "crop_size": self.protocol.crop_size},
            "sampling": self.sampling, "params_m": self.params_m, "size_mb": self.size_mb,
            "source": self.source, "page": self.page, "confirmed": self.confirmed,
            "license": self.license, "note": self.note,
        }
