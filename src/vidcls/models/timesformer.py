"""TimeSformer (Bertasius, Wang, Torresani, ICML 2021): a ViT over frame patches with
space-time self-attention, with all five attention schemes of the paper.

Structure and parameter names follow the reference code (facebookresearch/TimeSformer,
``timesformer/models/vit.py``) so its checkpoints and timm image-ViT weights map 1:1:
``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``time_embed``, ``blocks.{i}.{norm1, attn.qkv,
attn.proj, temporal_norm1, temporal_attn.*, temporal_fc, norm2, mlp.fc1, mlp.fc2}``, ``norm``,
``head``. The attention schemes and their exact token neighbourhoods are defined in
:mod:`vidcls.models.attention`.

Differences from the reference, all deliberate:

* Attention runs through ``scaled_dot_product_attention`` on strided views (no materialised
  attention matrix where a fused kernel exists, no q/k/v copies), and the token grid is regrouped
  with one copy per stage instead of the reference's repeat/rearrange chain.
* A clip whose frame count or size differs from the configured one gets *interpolated*
  embeddings: spatial ``pos_embed`` bicubically on the 2-D patch grid (cls position kept),
  ``time_embed`` linearly along time (``align_corners=False``). The reference uses ``nearest``
  for both (and HF transformers reshapes with the configured sizes, silently mixing tokens up).
  ``pos_interpolation`` / ``time_interpolation`` select another ``F.interpolate`` mode.
* ``space`` averages the per-frame tokens over time before the final norm and head, as the
  reference does (HF transformers returns per-frame logits instead).
* ``dropout`` (before the head) is applied; the reference defines it but never calls it.

Model contract (shared by all vidcls models): input float ``(B, T, 3, H, W)``, normalised with
``preprocessing["mean"/"std"]``; output logits ``(B, num_classes)``;
``forward(x) == forward_head(forward_features(x))``.

Long because: the block has two forms of one computation (the functional one autograd and
exporters need, and the in-place inference one that keeps the residual stream in one buffer),
and the weight filters that take every known checkpoint layout to this model sit beside the
parameter names they depend on.
"""
from __future__ import annotations

import contextlib
import re
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vidcls.models._preprocessing import TIMESFORMER
from vidcls.models._registry import register_model
from vidcls.models._weights import classifier_keys, strip_prefix
from vidcls.models.attention import VARIANT_STAGES, Attention, grouped_attention
from vidcls.models.inference_linear import InferenceLinear, autocast_dtype
from vidcls.models.vit_layers import DropPath, Mlp, PatchEmbed, pair
from vidcls.ops.temporal_shift import in_eager_inference

__all__ = [
    "TimeSformer", "Block", "ATTENTION_TYPES", "resize_pos_embed", "resize_time_embed",
    "resample_embeddings", "checkpoint_filter_fn", "timm_vit_to_timesformer_state_dict",
    "timesformer_base", "timesformer_hr", "timesformer_large",
]

ATTENTION_TYPES = tuple(VARIANT_STAGES)

class Block(nn.Module):
    """One TimeSformer encoder block: the attention stages of ``attention``, then the MLP.

    Every stage before the last is ``x = x + {p}_fc(drop_path({p}_attn({p}_norm1(x))))`` inside
    the stage's groups (the reference's temporal stage, ``temporal_fc`` zero-initialised so a
    block starts as its image-ViT self); the last stage is ``attn`` / ``norm1`` with the cls token
    joining every group; then ``x = x + drop_path(mlp(norm2(x)))`` on all tokens.
    """

    def __init__(self, dim: int, num_heads: int, *, attention: str = "divided",
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-6):
        super().__init__()
        if attention not in VARIANT_STAGES:
            raise ValueError(f"unknown attention {attention!r}; choose one of {ATTENTION_TYPES}")
        self.attention = attention
        pre_stages, self.last_partition = VARIANT_STAGES[attention]
        self.stages = [(prefix, partition) for prefix, partition in pre_stages]

        def new_attn():
            return Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                             proj_drop=drop)

        # Registration order = the reference's state-dict order.
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = new_attn()
        for prefix, _ in self.stages:
            self.add_module(f"{prefix}_norm1", nn.LayerNorm(dim, eps=norm_eps))
            self.add_module(f"{prefix}_attn", new_attn())
            self.add_module(f"{prefix}_fc", InferenceLinear(dim, dim))
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self._fused: dict[str, tuple] = {}  # prefix -> (key, (W, b)): see fused_proj_fc
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)), drop)

    def fused_proj_fc(self, prefix: str, num_tokens: int) -> tuple[Tensor, Tensor] | None:
        """``(W, b)`` of ``{prefix}_fc(attn.proj(.))`` as one linear map, for inference.

        In eval mode without autograd nothing sits between a stage's ``attn.proj`` and its
        ``_fc`` (dropout and drop-path are identities), so the two D x D products collapse
        into one: ``W = W_fc W_proj``, ``b = W_fc b_proj + b_fc``. Forming W costs D^3
        multiply-adds and saves ``num_tokens * D^2`` per call; it is kept for the next call
        under a key of the four parameters' versions, storage and the autocast dtype, so any
        change to the weights (an optimiser step, ``load_state_dict``, ``.to()``) makes it be
        formed again. Returns None when training, recording gradients, or tracing/compiling
        (exported graphs keep the parameters as they are), and when it would not pay off.
        """
        proj, fc = getattr(self, f"{prefix}_attn").proj, getattr(self, f"{prefix}_fc")
        if self.training or not in_eager_inference() or num_tokens <= fc.in_features:
            return None
        params = (fc.weight, fc.bias, proj.weight, proj.bias)
        autocast = autocast_dtype(fc.weight.device.type)
        key = (autocast, *((t.data_ptr(), t._version) for t in params))
        cached = self._fused.get(prefix)
        if cached is not None and cached[0] == key:
            return cached[1]
        self._fused.pop(prefix, None)
        # Formed in the parameters' precision, then cast once to what autocast computes in.
        device = fc.weight.device.type
        with (torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device)
              else contextlib.nullcontext()):
            weight = fc.weight @ proj.weight  # (D, D)
            bias = torch.addmv(fc.bias, fc.weight, proj.bias)  # (D,)
        if autocast is not None and weight.is_floating_point():
            weight, bias = weight.to(autocast), bias.to(autocast)
        self._fused[prefix] = (key, (weight, bias))
        return weight, bias

    def train(self, mode: bool = True):
        if mode:
            self._fused.clear()  # a training model holds no inference-only weights
        return super().train(mode)

    def __getstate__(self):
        # Pickling or deep-copying a block never carries (or duplicates) the fused weights.
        state = super().__getstate__()
        return {**state, "_fused": {}}

    def forward(self, cls: Tensor, x: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """cls ``(B, 1, D)``, x ``(B, T, N, D)`` with ``N = grid[0] * grid[1]`` -> same shapes."""
        if not self.training and in_eager_inference():
            return self._forward_in_place(cls, x, grid)
        for prefix, partition in self.stages:
            dx, _ = grouped_attention(
                getattr(self, f"{prefix}_attn"), getattr(self, f"{prefix}_norm1"), x, grid,
                partition, drop_path=self.drop_path, fc=getattr(self, f"{prefix}_fc"))
            x = x + dx
        dx, dcls = grouped_attention(self.attn, self.norm1, x, grid, self.last_partition,
                                     cls=cls, drop_path=self.drop_path)
        x = x + dx
        cls = cls + dcls
        # The MLP is per token: run it once over [cls, patches] so one drop-path mask per sample
        # covers both, as in the reference's single sequence.
        B, T, N, D = x.shape
        tokens = torch.cat([cls, x.reshape(B, T * N, D)], dim=1)  # (B, 1 + T*N, D)
        tokens = tokens + self.drop_path(self.mlp(self.norm2(tokens)))
        return tokens[:, :1], tokens[:, 1:].reshape(B, T, N, D)  # views

    def _forward_in_place(self, cls: Tensor, x: Tensor, grid: tuple[int, int]
                          ) -> tuple[Tensor, Tensor]:
        """Inference: the same sums, accumulated in place into one ``(B, 1 + T*N, D)`` buffer.

        Every residual update then writes into memory that is already mapped and warm instead
        of a fresh tensor per add (each ~5 MB at 8 x 224: on a CPU the page faults and cache
        misses of those allocations cost more than the adds), and the buffer the MLP needs
        is the residual stream itself, so no concatenation per block. The blocks of one
        forward pass hand the same buffer on (see ``_token_buffer``).
        """
        B, T, N, D = x.shape
        tokens = _token_buffer(cls, x)  # (B, 1 + T*N, D)
        cls, x = tokens[:, :1], tokens[:, 1:].view(B, T, N, D)  # views into tokens
        for prefix, partition in self.stages:
            dx, _ = grouped_attention(
                getattr(self, f"{prefix}_attn"), getattr(self, f"{prefix}_norm1"), x, grid,
                partition, fc=getattr(self, f"{prefix}_fc"),
                fused_proj_fc=self.fused_proj_fc(prefix, B * T * N))
            x.add_(dx)
        dx, dcls = grouped_attention(self.attn, self.norm1, x, grid, self.last_partition,
                                     cls=cls)
        x.add_(dx)
        cls.add_(dcls)
        tokens.add_(self.mlp(self.norm2(tokens)))
        return cls, x


def _token_buffer(cls: Tensor, x: Tensor) -> Tensor:
    """The ``(B, 1 + T*N, D)`` tensor that ``cls (B, 1, D)`` and ``x (B, T, N, D)`` are the two
    halves of, when the previous block returned them as views of one; else a new one (copy)."""
    B, T, N, D = x.shape
    base = x._base
    if (base is not None and base is cls._base and base.shape == (B, 1 + T * N, D)
            and base.is_contiguous() and cls.data_ptr() == base.data_ptr()
            and x.data_ptr() == base.data_ptr() + D * base.element_size()
            and x.stride() == (base.stride(0), N * D, D, 1)):
        return base
    return torch.cat([cls, x.reshape(B, T * N, D)], dim=1)  # (B, 1 + T*N, D)


def resize_pos_embed(pos_embed: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                     mode: str = "bicubic") -> Tensor:
    """Resample a ``(1, 1 + h*w, D)`` position embedding to another patch grid.

    The patch part is interpolated as a 2-D image (``align_corners=False``); the cls position
    is kept as is.
    """
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if old_grid == new_grid:
        return pos_embed
    D = pos_embed.shape[-1]
    if pos_embed.shape[1] != 1 + old_grid[0] * old_grid[1]:
        raise ValueError(f"pos_embed has {pos_embed.shape[1]} positions; expected "
                         f"1 + {old_grid[0]}x{old_grid[1]} for grid {old_grid}")
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    patch_pos = patch_pos.reshape(1, *old_grid, D).permute(0, 3, 1, 2)  # (1, D, h, w)
    kwargs = {} if mode in ("nearest", "area") else {"align_corners": False}
    patch_pos = F.interpolate(patch_pos.float(), size=new_grid, mode=mode, **kwargs)
    patch_pos = patch_pos.to(pos_embed.dtype).flatten(2).transpose(1, 2)  # (1, h'*w', D)
    return torch.cat([cls_pos, patch_pos], dim=1)


def resize_time_embed(time_embed: Tensor, num_frames: int, mode: str = "linear") -> Tensor:
    """Resample a ``(1, T, D)`` time embedding to ``num_frames`` along time
    (``align_corners=False``: frame ``t`` of the new clip sits at the same relative time)."""
    if time_embed.shape[1] == num_frames:
        return time_embed
    kwargs = {} if mode in ("nearest", "area") else {"align_corners": False}
    t = F.interpolate(time_embed.transpose(1, 2).float(), size=num_frames, mode=mode, **kwargs)
    return t.to(time_embed.dtype).transpose(1, 2)  # (1, T', D)


class TimeSformer(nn.Module):
    """TimeSformer video classifier (see the module docstring).

    Args:
        num_classes: classes of the linear head (0: no head, ``forward`` returns features).
        num_frames: frames the time embedding is sized for (other clip lengths work too).
        attention: ``"divided"`` (default), ``"joint"``, ``"space"``, ``"local_global"``,
            ``"axial"``.
        img_size: crop size (int or ``(H, W)``) the position embedding is sized for.
        patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, norm_eps:
            ViT architecture (defaults: ViT-B/16).
        drop_rate: dropout on embeddings, attention output and MLP (reference ``drop_rate``).
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, linearly increasing to this value over the blocks.
        dropout: dropout on the cls feature before the head.
        pos_interpolation / time_interpolation: ``F.interpolate`` modes used to fit the
            embeddings to clips of another size / length.
    """

    def __init__(self, *, num_classes: int = 400, num_frames: int = 8,
                 attention: str = "divided", img_size: int | tuple[int, int] = 224,
                 patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, dropout: float = 0.0, norm_eps: float = 1e-6,
                 pos_interpolation: str = "bicubic", time_interpolation: str = "linear"):
        super().__init__()
        if attention not in VARIANT_STAGES:
            raise ValueError(f"unknown attention {attention!r}; choose one of {ATTENTION_TYPES}")
        img_size = pair(img_size)
        if img_size[0] % patch_size or img_size[1] % patch_size:
            raise ValueError(f"img_size={img_size} is not a multiple of patch_size={patch_size}; "
                             f"use e.g. img_size={img_size[0] // patch_size * patch_size}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.attention = attention
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid_size = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_features = self.embed_dim = embed_dim
        self.pos_interpolation = pos_interpolation
        self.time_interpolation = time_interpolation
        self.grad_checkpointing = False
        # Reference testing (3 crops): short side scaled to the crop size, then crops.
        self.preprocessing = TIMESFORMER.replace(input_size=img_size, resize=min(img_size),
                                                 num_frames=num_frames)

        num_patches = self.grid_size[0] * self.grid_size[1]
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        # "space" treats frames independently: no time embedding (as the reference).
        if attention != "space":
            self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
            self.time_drop = nn.Dropout(drop_rate)
        else:
            self.time_embed = None
        # stochastic depth decay rule (plain floats: this also runs under torch.device("meta"))
        dpr = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, attention=attention, mlp_ratio=mlp_ratio,
                  qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                  drop_path=dpr[i], norm_eps=norm_eps)
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(dropout)
        self.head = InferenceLinear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.reset_parameters()

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A new head for ``num_classes`` classes (0: none, ``forward`` returns the cls
        feature), initialised as at construction."""
        self.num_classes = num_classes
        self.head = (InferenceLinear(self.embed_dim, num_classes) if num_classes > 0
                     else nn.Identity())
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        if getattr(self, "build_config", None):
            self.build_config = {**self.build_config, "num_classes": num_classes}

    def reset_parameters(self) -> None:
        """ViT-B init: trunc-normal(0.02) linears / pos / cls; every stage ``*_fc`` and the time
        embedding zero, so an untrained video block equals its image-ViT block."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for blk in self.blocks:
            for prefix, _ in blk.stages:
                fc = getattr(blk, f"{prefix}_fc")
                nn.init.zeros_(fc.weight)
                nn.init.zeros_(fc.bias)
        if self.time_embed is not None:
            nn.init.zeros_(self.time_embed)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameter names the reference excludes from weight decay."""
        return {"pos_embed", "cls_token", "time_embed"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass (saves activation memory when training
        long clips, e.g. TimeSformer-L's 96 frames)."""
        self.grad_checkpointing = enable

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 5 or x.shape[2] != self.in_chans:
            raise ValueError(f"expected a clip batch (B, T, {self.in_chans}, H, W), got shape "
                             f"{tuple(x.shape)} (permute (B, C, T, H, W) input with "
                             f"x.transpose(1, 2))")
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p or W % p or H < p or W < p:
            raise ValueError(f"clip is {H}x{W}; TimeSformer needs H and W to be positive "
                             f"multiples of patch_size={p} (resize/crop to e.g. "
                             f"{max(p, H // p * p)}x{max(p, W // p * p)})")

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, T, C, H, W)`` -> final normalised tokens ``(B, 1 + T*N, D)``: the cls token
        first, then patches in (frame, row, column) order. For ``space`` the patch tokens are
        averaged over frames: ``(B, 1 + N, D)``."""
        self._check_input(x)
        B, T, C, H, W = x.shape
        x = self.patch_embed(x.reshape(B * T, C, H, W))  # (B*T, D, h, w)
        grid = (x.shape[-2], x.shape[-1])
        N, D = grid[0] * grid[1], x.shape[1]
        x = x.flatten(2).transpose(1, 2)  # (B*T, N, D)
        pos = resize_pos_embed(self.pos_embed, self.grid_size, grid, self.pos_interpolation)
        x = self.pos_drop(x + pos[:, 1:])  # (B*T, N, D)
        cls = self.pos_drop(self.cls_token.expand(B, 1, D) + pos[:, :1])  # (B, 1, D)
        x = x.reshape(B, T, N, D)  # (B, T, N, D)
        if self.time_embed is not None:
            time = resize_time_embed(self.time_embed, T, self.time_interpolation)  # (1, T, D)
            x = self.time_drop(x + time.unsqueeze(2))  # (B, T, N, D)
        else:
            # "space": every frame is its own 1-frame clip with its own cls token.
            x = x.reshape(B * T, 1, N, D)  # (B*T, 1, N, D)
            cls = cls.unsqueeze(1).expand(B, T, 1, D).reshape(B * T, 1, D)  # (B*T, 1, D)

        for blk in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                cls, x = checkpoint(blk, cls, x, grid, use_reentrant=False)
            else:
                cls, x = blk(cls, x, grid)

        if self.time_embed is None:
            cls = cls.reshape(B, T, D).mean(dim=1, keepdim=True)  # (B, 1, D)
            x = x.reshape(B, T, N, D).mean(dim=1, keepdim=True)  # (B, 1, N, D)
        tokens = _token_buffer(cls, x)  # (B, 1 + T'*N, D)
        return self.norm(tokens)

    def forward_head(self, feats: Tensor, pre_logits: bool = False) -> Tensor:
        """Tokens from ``forward_features`` -> logits ``(B, num_classes)`` from the cls token
        (``pre_logits=True``: the cls feature ``(B, D)``)."""
        x = self.head_drop(feats[:, 0])  # (B, D)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------
# Weights: the one embedding resampler and the filter that takes every known layout to ours.

def resample_embeddings(state: Mapping[str, Tensor], model: "TimeSformer") -> dict[str, Tensor]:
    """Fit a checkpoint's ``pos_embed`` (square patch grid) and ``time_embed`` to ``model``'s
    grid and frame count, with the model's recorded interpolation modes (``nearest`` for
    converted reference checkpoints, as the reference resizes)."""
    out = dict(state)
    pos = out.get("pos_embed")
    if pos is not None and pos.shape[1] != model.pos_embed.shape[1]:
        n = pos.shape[1] - 1
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ValueError(f"pos_embed has {n} patch positions, not a square grid; cannot "
                             "infer the grid it was trained on")
        out["pos_embed"] = resize_pos_embed(pos, (side, side), model.grid_size,
                                            model.pos_interpolation)
    time = out.get("time_embed")
    if time is not None and model.time_embed is not None:
        out["time_embed"] = resize_time_embed(time, model.num_frames, model.time_interpolation)
    return out


_TIMM_VIT_KEY = re.compile(
    r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)"
    r"|head\.(weight|bias)"
    r"|blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias))$")


def timm_vit_to_timesformer_state_dict(vit_state: Mapping[str, Tensor], *, attention: str,
                                       grid_size: tuple[int, int], num_classes: int,
                                       pos_interpolation: str = "bicubic") -> dict[str, Tensor]:
    """A timm image ViT state dict -> a TimeSformer state dict (without ``time_embed`` and the
    zero-initialised ``*_fc``, which keep the model's own init).

    As in the reference's ``load_pretrained``: every earlier attention stage (``temporal_attn``,
    ``local_attn``, ``width_attn``) and its ``*_norm1`` start as copies of the block's spatial
    ``attn`` / ``norm1``. The position embedding is resampled to ``grid_size``; the head is
    dropped when its class count differs from ``num_classes``.
    """
    sd = strip_prefix(vit_state, "module.", "model.")
    unknown = [k for k in sd if not _TIMM_VIT_KEY.match(k)]
    if unknown:
        raise KeyError(f"not a plain timm ViT state dict (cls token, learned pos_embed, no "
                       f"layer scale / registers); unexpected keys: {unknown[:5]}")
    out = dict(sd)
    pos = out["pos_embed"]
    old_n = pos.shape[1] - 1
    side = int(round(old_n ** 0.5))
    if side * side != old_n:
        raise ValueError(f"pos_embed has {old_n} patch positions, not a square grid; "
                         f"cannot infer the pretraining grid")
    out["pos_embed"] = resize_pos_embed(pos, (side, side), grid_size, pos_interpolation)
    if "head.weight" in out and (num_classes == 0 or out["head.weight"].shape[0] != num_classes):
        del out["head.weight"], out["head.bias"]
    prefixes = [p for p, _ in VARIANT_STAGES[attention][0]]
    for key in list(sd):
        m = re.match(r"^(blocks\.\d+\.)(attn|norm1)(\..*)$", key)
        if m:
            for p in prefixes:
                out[f"{m[1]}{p}_{m[2]}{m[3]}"] = sd[key].clone()
    return out


def _image_vit_fresh_keys(model: "TimeSformer") -> list[str]:
    """What an image ViT cannot provide: the time embedding and every stage projection."""
    return [k for k in model.state_dict()
            if k == "time_embed" or re.match(r"^blocks\.\d+\.\w+_fc\.(weight|bias)$", k)]


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: "TimeSformer"
                         ) -> tuple[dict[str, Tensor], list[str]]:
    """Weights for ``pretrained=`` / ``train --init`` / converters -> this model's names.

    * a TimeSformer state dict, ours or the reference's (``model.`` / ``module.`` prefixes go;
      recognised by ``time_embed`` or stage keys): embeddings resampled to the model's grid and
      frame count;
    * a timm image ViT: inflated as the reference does (:func:`timm_vit_to_timesformer_state_dict`);
      the time embedding and stage projections keep their zero init.

    A head with another class count keeps its init (fine-tuning). Returns ``(state_dict, keys
    left at their init)``.
    """
    sd = strip_prefix(strip_prefix(state_dict, "module."), "model.")
    fresh: list[str] = []
    if any(k == "time_embed" or "_attn." in k for k in sd):
        sd = resample_embeddings(sd, model)
    else:
        sd = timm_vit_to_timesformer_state_dict(
            sd, attention=model.attention, grid_size=model.grid_size,
            num_classes=model.num_classes, pos_interpolation=model.pos_interpolation)
        fresh = _image_vit_fresh_keys(model)
    head = classifier_keys(model)
    own = model.state_dict()
    if any(k in sd and sd[k].shape != own[k].shape for k in head) or not all(k in sd for k in head):
        sd = {k: v for k, v in sd.items() if k not in head}
        fresh += head
    return sd, fresh


# ---------------------------------------------------------------------------------------------
# Builders: only architecture arguments. All are ViT-B/16 (D=768, L=12, A=12, MLP 3072).
_register = register_model(filter_fn=checkpoint_filter_fn)


@_register
def timesformer_base(*, num_classes: int = 400, num_frames: int = 8,
                     attention: str = "divided", img_size: int = 224, **kwargs) -> TimeSformer:
    """TimeSformer (8 frames x 224).

    Other keywords go to :class:`TimeSformer` (``patch_size``, ``embed_dim``, ``depth``,
    ``num_heads``, ``mlp_ratio``, ``dropout``, ``drop_path_rate``, ...; e.g. a tiny model for
    tests and demos). ``pretrained``: path to an image ViT-B/16 with timm names (spatial
    attention copied into the temporal one, as the reference does) or a TimeSformer weight
    file, ours or the reference's (.safetensors / .pth / .pyth state dict).
    """
    return TimeSformer(num_classes=num_classes, num_frames=num_frames, attention=attention,
                       img_size=img_size, **kwargs)


@_register
def timesformer_hr(*, num_classes: int = 400, num_frames: int = 16,
                   attention: str = "divided", img_size: int = 448, **kwargs) -> TimeSformer:
    """TimeSformer-HR (16 frames x 448); keywords as :func:`timesformer_base`."""
    return TimeSformer(num_classes=num_classes, num_frames=num_frames, attention=attention,
                       img_size=img_size, **kwargs)


@_register
def timesformer_large(*, num_classes: int = 400, num_frames: int = 96,
                      attention: str = "divided", img_size: int = 224, **kwargs) -> TimeSformer:
    """TimeSformer-L (96 frames x 224); keywords as :func:`timesformer_base`."""
    return TimeSformer(num_classes=num_classes, num_frames=num_frames, attention=attention,
                       img_size=img_size, **kwargs)
