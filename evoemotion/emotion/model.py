"""EmotionModel: an ImageNet backbone with named emotion heads, and its checkpoints.

A model has one backbone and any of these heads on its pooled embedding:

- ``categorical``: K named classes, softmax probabilities (outputs ``logits`` and ``probs``);
- ``va`` / ``vad``: valence, arousal (and dominance) regression; single-dimension heads
  ``valence``, ``arousal``, ``dominance`` exist too. Regression outputs lie on a documented
  scale, by default the 1-9 SAM / Warriner scale (a sigmoid maps the head into the scale).

A head may be an ensemble of several independently initialised and trained MLPs
(``members``); its output is their average (logits for a categorical head, values on the
scale for a regression head), wherever the model is used.

Checkpoints are self-describing ``torch.save`` dicts: backbone name and weights source, head
specs, class names, scales, preprocessing, and free metadata (training data, split, seed,
metrics, version). A backbone whose weights come from a standard source (``"imagenet"``) and
was not fine-tuned is not stored: loading rebuilds it, so such a checkpoint holds only heads.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evoemotion import __version__
from evoemotion.atomic import atomic_write
from evoemotion.emotion.backbones import BackboneInfo, build_backbone
from evoemotion.errors import CheckpointError, ConfigError

#: Marker of an evoemotion emotion-model checkpoint, and the layout version written
#: (2: head weights under ``members.K``; version 1 files, with ``net``, still load).
CHECKPOINT_FORMAT = "evoemotion-emotion-model"
FORMAT_VERSION = 2

#: The bundled default checkpoint (heads only; Lite0 ImageNet weights come from PyPI).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default" / "model.pt"

#: Bundled checkpoints by name: ``default`` (categorical head trained on the categories the
#: images were collected for: every class expressible) and ``raters`` (the same backbone and
#: valence/arousal/dominance heads, categorical head trained on the raters' distributions).
BUNDLED = {"default": DEFAULT_CHECKPOINT, "raters": DEFAULT_CHECKPOINT.parent / "raters.pt"}


def checkpoint_path(source: str | os.PathLike) -> Path:
    """The file of a checkpoint source: a bundled name (:data:`BUNDLED`) or a path."""
    return BUNDLED.get(str(source)) or Path(source).expanduser()

#: Regression head names and the outputs each predicts.
REGRESSION_HEADS = {
    "va": ("valence", "arousal"),
    "vad": ("valence", "arousal", "dominance"),
    "valence": ("valence",),
    "arousal": ("arousal",),
    "dominance": ("dominance",),
}

#: Scale of every regression output unless a head says otherwise (SAM / Warriner 1-9).
DEFAULT_SCALE = (1.0, 9.0)


@dataclass(frozen=True)
class HeadSpec:
    """One head: its name, kind, output names and small MLP shape.

    Attributes:
        name: ``"categorical"`` or a key of :data:`REGRESSION_HEADS`.
        kind: ``"categorical"`` or ``"regression"``.
        outputs: Class names (categorical) or regression output names.
        hidden: Width of one hidden layer (GELU); 0 for a linear head.
        dropout: Dropout before each linear layer while training.
        scale: ``(low, high)`` of regression outputs; ``None`` for categorical heads.
        members: Number of MLPs of this shape whose outputs are averaged (an ensemble).
    """

    name: str
    kind: str
    outputs: tuple[str, ...]
    hidden: int = 0
    dropout: float = 0.0
    scale: tuple[float, float] | None = field(default=None)
    members: int = 1

    def to_dict(self) -> dict:
        """Return the spec as a JSON-able dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "outputs": list(self.outputs),
            "hidden": self.hidden,
            "dropout": self.dropout,
            "scale": list(self.scale) if self.scale else None,
            "members": self.members,
        }

    @classmethod
    def from_dict(cls, d: dict) -> HeadSpec:
        """Rebuild a spec written by :meth:`to_dict`.

        Raises:
            CheckpointError: a field is missing or malformed.
        """
        try:
            scale = d.get("scale")
            return cls(
                name=str(d["name"]),
                kind=str(d["kind"]),
                outputs=tuple(str(o) for o in d["outputs"]),
                hidden=int(d.get("hidden", 0)),
                dropout=float(d.get("dropout", 0.0)),
                scale=(float(scale[0]), float(scale[1])) if scale else None,
                members=int(d.get("members", 1)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise CheckpointError(f"head description {d!r} lacks or mangles a field") from err


def head_specs(
    heads: list[str],
    class_names: list[str] | None = None,
    hidden: int = 0,
    dropout: float = 0.0,
    scale: tuple[float, float] = DEFAULT_SCALE,
    members: int = 1,
) -> list[HeadSpec]:
    """Turn head names into validated :class:`HeadSpec` objects.

    Args:
        heads: Names: ``"categorical"``, ``"va"``, ``"vad"``, ``"valence"``, ``"arousal"``,
            ``"dominance"``.
        class_names: Class names of the categorical head (required with it).
        hidden: Hidden width of every head (0: linear).
        dropout: Dropout rate of every head.
        scale: Scale of the regression outputs.
        members: Ensemble size of every head (MLPs averaged).

    Returns:
        One spec per head, in the given order.

    Raises:
        ConfigError: unknown head, no class names for a categorical head, an output
            predicted by two heads, or fewer than one member.
    """
    if members < 1:
        raise ConfigError(f"heads need at least one member, got members={members}")
    specs, seen = [], set()
    for name in heads:
        if name == "categorical":
            if not class_names or len(set(class_names)) != len(class_names):
                raise ConfigError(
                    f"a categorical head needs distinct class names, got {class_names!r}"
                )
            spec = HeadSpec(name, "categorical", tuple(class_names), hidden, dropout, None, members)
        elif name in REGRESSION_HEADS:
            outputs = REGRESSION_HEADS[name]
            spec = HeadSpec(name, "regression", outputs, hidden, dropout, scale, members)
        else:
            known = ", ".join(["categorical", *REGRESSION_HEADS])
            raise ConfigError(f"unknown head {name!r}; known heads: {known}")
        key_outputs = {"probs"} if spec.kind == "categorical" else set(spec.outputs)
        if key_outputs & seen:
            raise ConfigError(f"head {name!r} repeats outputs {sorted(key_outputs & seen)}")
        seen |= key_outputs
        specs.append(spec)
    if not specs:
        raise ConfigError("a model needs at least one head")
    return specs


def _mlp(in_dim: int, spec: HeadSpec) -> nn.Sequential:
    """One linear or one-hidden-layer (GELU) network of a head, dropout before each layer."""
    layers: list[nn.Module] = [nn.Dropout(spec.dropout)]
    if spec.hidden:
        layers += [nn.Linear(in_dim, spec.hidden), nn.GELU(), nn.Dropout(spec.dropout)]
        in_dim = spec.hidden
    layers.append(nn.Linear(in_dim, len(spec.outputs)))
    return nn.Sequential(*layers)


def _rename_single_net(module, state_dict, prefix, *_) -> None:
    """Load-state-dict pre-hook: format-1 heads kept their one network under ``net``."""
    for key in [k for k in state_dict if k.startswith(prefix + "net.")]:
        state_dict[prefix + "members.0." + key[len(prefix) + 4 :]] = state_dict.pop(key)


class Head(nn.Module):
    """Linear or one-hidden-layer MLP head(s) on the standardised embedding.

    With ``spec.members > 1`` the head is an ensemble: its output is the mean of its
    members' outputs (logits for a categorical head, scaled values for a regression head).

    Args:
        in_dim: Embedding size.
        spec: What the head predicts.
    """

    def __init__(self, in_dim: int, spec: HeadSpec):
        super().__init__()
        self.members = nn.ModuleList(_mlp(in_dim, spec) for _ in range(spec.members))
        self.spec = spec
        self.register_load_state_dict_pre_hook(_rename_single_net)

    def forward(self, z: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """Head output ``(N, outputs)``; regression outputs are mapped into the scale.

        Args:
            z: Standardised embedding ``(N, D)``.
            member: Output of this member alone (training fits members independently);
                ``None`` for the ensemble mean.

        Returns:
            Logits (categorical) or values on the scale (regression).
        """
        nets = self.members if member is None else [self.members[member]]
        ys = [net(z) for net in nets]
        if self.spec.kind == "regression":
            low, high = self.spec.scale
            ys = [low + (high - low) * torch.sigmoid(y) for y in ys]
        return ys[0] if len(ys) == 1 else torch.stack(ys).mean(dim=0)


class EmotionModel(nn.Module):
    """Backbone + named heads; predicts emotion from preprocessed images.

    Args:
        backbone: Module mapping ``(N, 3, S, S)`` to ``(N, D)``.
        info: The backbone's name, weights source and preprocessing.
        heads: Head specs; at most one categorical head.
        metadata: Free description: training data, split, seed, metrics ...

    Attributes:
        metadata: dict describing how the model was made.
    """

    def __init__(
        self,
        backbone: nn.Module,
        info: BackboneInfo,
        heads: list[HeadSpec],
        metadata: dict | None = None,
    ):
        super().__init__()
        if sum(h.kind == "categorical" for h in heads) > 1:
            raise ConfigError("a model carries at most one categorical head")
        self.backbone = backbone
        self.info = info
        self.head_specs = list(heads)
        self.heads = nn.ModuleDict({h.name: Head(info.feature_dim, h) for h in heads})
        self.register_buffer("feature_mean", torch.zeros(info.feature_dim))
        self.register_buffer("feature_scale", torch.ones(info.feature_dim))
        self.metadata = dict(metadata or {})
        self._identity: str | None = None

    @property
    def class_names(self) -> list[str]:
        """Class names of the categorical head; ``[]`` without one."""
        return [o for h in self.head_specs if h.kind == "categorical" for o in h.outputs]

    @property
    def regression_names(self) -> list[str]:
        """Names of the regression outputs, e.g. ``["valence", "arousal"]``."""
        return [o for h in self.head_specs if h.kind == "regression" for o in h.outputs]

    @property
    def output_names(self) -> list[str]:
        """Class names followed by regression names."""
        return self.class_names + self.regression_names

    @property
    def scales(self) -> dict[str, tuple[float, float]]:
        """``(low, high)`` of every output; class probabilities are 0..1."""
        out = {name: (0.0, 1.0) for name in self.class_names}
        for h in self.head_specs:
            if h.kind == "regression":
                out.update({name: h.scale for name in h.outputs})
        return out

    @property
    def members(self) -> int:
        """Ensemble size of the heads (the largest, should they differ)."""
        return max(h.members for h in self.head_specs)

    @property
    def input_size(self) -> int:
        """Square input side in pixels: the backbone's native size, or the one trained at."""
        return self.info.input_size

    @property
    def embedding_dim(self) -> int:
        """Size of the pooled embedding returned as ``"embedding"``."""
        return self.info.feature_dim

    @property
    def identity(self) -> str:
        """sha256 hex of the checkpoint file (or of the weights, for an unsaved model)."""
        if self._identity is None:
            digest = hashlib.sha256()
            for key, value in self.state_dict().items():
                digest.update(key.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            return digest.hexdigest()
        return self._identity

    def preprocess(
        self, images: torch.Tensor | np.ndarray, size: int | None = None
    ) -> torch.Tensor:
        """Resize and normalise images the model's way, on the images' device.

        The whole image is resized to a square (no crop); downscaling is antialiased. For float
        input the operation is differentiable.

        Args:
            images: uint8 ``(N, H, W, 3)`` tensor or array, or float ``(N, 3, H, W)`` in [0, 1].
            size: Output side in pixels; default :attr:`input_size`.

        Returns:
            Float tensor ``(N, 3, size, size)``.

        Raises:
            ConfigError: the images have the wrong shape or dtype.
        """
        size = int(size or self.input_size)
        x = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
        if x.dtype == torch.uint8:
            if x.ndim != 4 or x.shape[-1] != 3:
                raise ConfigError(f"uint8 images must be (N, H, W, 3), got {tuple(x.shape)}")
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
        elif not x.is_floating_point() or x.ndim != 4 or x.shape[1] != 3:
            raise ConfigError(
                f"images must be uint8 (N, H, W, 3) or float (N, 3, H, W), got "
                f"{x.dtype} {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if (height, width) != (size, size):
            x = F.interpolate(
                x,
                size=(size, size),
                mode="bilinear",
                align_corners=False,
                antialias=height > size or width > size,
            )
        mean = torch.tensor(self.info.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.info.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predict every head's outputs from a preprocessed batch.

        Args:
            x: Output of :meth:`preprocess`, on the model's device.

        Returns:
            ``"embedding"`` (N, D); ``"logits"`` and ``"probs"`` (N, K) with a categorical
            head; one (N,) tensor per regression name.
        """
        return self.predict_from_embedding(self.backbone(x))

    def predict_from_embedding(
        self, embedding: torch.Tensor, member: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Apply the heads to pooled backbone features (used on cached features too).

        Args:
            embedding: ``(N, D)`` backbone features.
            member: Use only this ensemble member of every head (each head's last member
                where it has fewer); ``None`` for the ensemble means.

        Returns:
            The same dict as :meth:`forward`.
        """
        z = (embedding - self.feature_mean) / self.feature_scale
        out = {"embedding": embedding}
        for spec in self.head_specs:
            y = self.heads[spec.name](z, None if member is None else min(member, spec.members - 1))
            if spec.kind == "categorical":
                out["logits"] = y
                out["probs"] = torch.softmax(y, dim=-1)
            else:
                out.update({name: y[:, i] for i, name in enumerate(spec.outputs)})
        return out


def build_model(
    backbone: str,
    heads: list[str],
    class_names: list[str] | None = None,
    *,
    weights: str | os.PathLike = "none",
    hidden: int = 0,
    dropout: float = 0.0,
    members: int = 1,
) -> EmotionModel:
    """Build a model with untrained heads, in eval mode.

    Args:
        backbone: Backbone name (see :func:`~evoemotion.emotion.backbones.available_backbones`).
        heads: Head names, e.g. ``["categorical", "va"]``.
        class_names: Classes of the categorical head.
        weights: ``"none"``, ``"imagenet"`` or a local backbone state_dict file.
        hidden: Hidden width of the heads (0: linear heads).
        dropout: Dropout of the heads while training.
        members: Ensemble size of every head.

    Returns:
        The model.

    Raises:
        ConfigError: bad backbone or head names, or fewer than one member.
        CheckpointError: backbone weights not found or not fitting.
    """
    specs = head_specs(heads, class_names, hidden, dropout, members=members)
    module, info = build_backbone(backbone, weights)
    return EmotionModel(module, info, specs).eval()


def _backbone_included(model: EmotionModel, include_backbone: bool | None) -> bool:
    """Whether a checkpoint must carry the backbone weights to rebuild ``model``."""
    if include_backbone is not None:
        return include_backbone
    return model.info.weights != "imagenet" or bool(model.metadata.get("finetuned"))


def save_model(
    model: EmotionModel,
    path: str | os.PathLike,
    include_backbone: bool | None = None,
    **metadata,
) -> Path:
    """Write a self-describing checkpoint atomically.

    Args:
        model: The model to save.
        path: Destination ``.pt`` file (folders are created).
        include_backbone: Store the backbone weights; by default only when they cannot be
            rebuilt from their source (not ImageNet, or fine-tuned).
        **metadata: Merged into ``model.metadata`` (data, split, seed, metrics ...).

    Returns:
        The written path; ``model.identity`` becomes the file's sha256.
    """
    path = Path(path)
    model.metadata.update(metadata)
    with_backbone = _backbone_included(model, include_backbone)
    state = {
        k: v.detach().cpu()
        for k, v in model.state_dict().items()
        if with_backbone or not k.startswith("backbone.")
    }
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "evoemotion_version": __version__,
        "backbone": model.info.to_dict(),
        "backbone_included": with_backbone,
        "heads": [h.to_dict() for h in model.head_specs],
        "class_names": model.class_names,
        "regression_names": model.regression_names,
        "scales": {k: list(v) for k, v in model.scales.items()},
        "preprocess": {
            "input_size": model.input_size,
            "mean": list(model.info.mean),
            "std": list(model.info.std),
            "resize": "whole image to a square, bilinear, antialiased when downscaling",
        },
        "metadata": model.metadata,
        "state_dict": state,
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    atomic_write(path, data)
    model._identity = hashlib.sha256(data).hexdigest()
    return path


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:i`` into a torch device, checking it exists.

    Args:
        device: The requested device; ``auto`` is CUDA when present, else CPU.

    Returns:
        The device.

    Raises:
        ConfigError: The name is not a device, or names a CUDA device that is absent.
    """
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device {name!r} is not auto, cpu, cuda or cuda:INDEX") from err
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not auto, cpu, cuda or cuda:INDEX")
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0 or (resolved.index or 0) >= count:
            raise ConfigError(f"device {name!r} is not available ({count} CUDA devices)")
    return resolved


def classifier_record(source: str, model: EmotionModel) -> dict[str, object]:
    """Describe a loaded classifier for a run's or generator's record (never its weights).

    Args:
        source: How it was named (a bundled name such as ``"default"``, or a path).
        model: The loaded model.

    Returns:
        Source (absolute path unless bundled), identity hash, outputs and backbone.
    """
    where = source if source in BUNDLED else str(Path(source).expanduser().resolve())
    return {
        "source": where,
        "identity": model.identity,
        "outputs": model.output_names,
        "backbone": model.metadata.get("backbone", getattr(model.info, "name", "")),
    }


def load_torch_checkpoint(
    path: Path, *, file_format: str, max_version: int, kind: str, label: str
) -> tuple[dict, bytes]:
    """Read an evoemotion ``torch.save`` file safely (``weights_only``) and check its format.

    Args:
        path: The file.
        file_format: The ``"format"`` tag the file must carry.
        max_version: The newest ``"format_version"`` this evoemotion reads.
        kind: What the file is, for messages (``"model"``, ``"generator"``).
        label: The evoemotion name of the format, for messages (``"emotion-model"``).

    Returns:
        The checkpoint dict and the raw file bytes.

    Raises:
        CheckpointError: missing, unreadable, of another format or a newer version; one
            line naming the file.
    """
    if not path.is_file():
        raise CheckpointError(f"{kind} file {path} not found")
    data = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CheckpointError(
            f"{path} is not a readable {kind} checkpoint (not a torch.save archive, or truncated)"
        )
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every unpickling failure means a bad file
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise CheckpointError(f"{path} is not a readable {kind} checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != file_format:
        raise CheckpointError(f"{path} is not an evoemotion {label} checkpoint")
    if int(checkpoint.get("format_version", 0)) > max_version:
        raise CheckpointError(
            f"{path} has {kind} format {checkpoint['format_version']}, newer than "
            f"this evoemotion's ({max_version}); upgrade evoemotion"
        )
    return checkpoint, data


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, bytes]:
    """Read and validate a checkpoint file without building the model.

    Args:
        path: The checkpoint, or a bundled name (``"default"``, ``"raters"``).

    Returns:
        The checkpoint dict and the raw file bytes.

    Raises:
        CheckpointError: missing, unreadable, or not an evoemotion emotion model.
    """
    return load_torch_checkpoint(
        checkpoint_path(path),
        file_format=CHECKPOINT_FORMAT,
        max_version=FORMAT_VERSION,
        kind="model",
        label="emotion-model",
    )


def load_model(
    source: str | os.PathLike = "default", device: str | torch.device = "cpu"
) -> EmotionModel:
    """Load a checkpoint written by :func:`save_model` (or the bundled default).

    Args:
        source: A bundled name (``"default"``, ``"raters"``) or a path to a ``.pt``
            checkpoint.
        device: Torch device, or ``"auto"``.

    Returns:
        The model in eval mode on ``device``; ``identity`` is the file's sha256.

    Raises:
        CheckpointError: the file is missing, corrupt, not a model, or its weights do not
            match its description (one-line message naming the file).
    """
    checkpoint, data = read_checkpoint(source)
    where = checkpoint_path(source)
    try:
        info = BackboneInfo.from_dict(checkpoint["backbone"])
        specs = [HeadSpec.from_dict(h) for h in checkpoint["heads"]]
        included = bool(checkpoint["backbone_included"])
        state = checkpoint["state_dict"]
    except (KeyError, CheckpointError) as err:
        raise CheckpointError(f"{where} is an incomplete model checkpoint ({err})") from err
    module, _ = build_backbone(info.name, "none" if included else info.weights)
    model = EmotionModel(module, info, specs, checkpoint.get("metadata"))
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        reason = next((ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()), "")
        raise CheckpointError(f"{where} does not match its own description: {reason}") from err
    missing = [k for k in result.missing_keys if included or not k.startswith("backbone.")]
    if missing or result.unexpected_keys:
        bad = (missing + list(result.unexpected_keys))[0]
        raise CheckpointError(
            f"{where} does not match its own description ({len(missing)} missing, "
            f"{len(result.unexpected_keys)} unexpected weights; first: {bad})"
        )
    model._identity = hashlib.sha256(data).hexdigest()
    return model.to(resolve_device(device)).eval()
