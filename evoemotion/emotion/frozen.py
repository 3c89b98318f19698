"""A frozen classifier for back-propagating to its input: batch norms folded into convolutions.

Training through a classifier whose weights never change (the conditional generator,
gradient-guided search) pays for every batch normalisation twice, forward and backward,
although in eval mode it is only a per-channel scale and shift. :func:`folded_copy` folds
each batch norm that directly follows a convolution into that convolution's weights and
bias (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`), which halves the cost of a forward
and backward pass of an EfficientNet-Lite backbone on a CPU and leaves its outputs equal up
to float rounding.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: Largest absolute difference between the outputs of the model and its folded copy that
#: counts as float rounding; beyond it the copy is discarded (see :func:`folded_copy`).
FOLD_TOLERANCE = 1e-3


def _conv_bn_pairs(model: nn.Module, probe: torch.Tensor) -> list[tuple[nn.Conv2d, str]]:
    """(convolution, name of the batch norm) pairs where the norm reads the conv's output."""
    names = {module: name for name, module in model.named_modules()}
    last: dict[str, Any] = {}
    pairs: list[tuple[nn.Conv2d, str]] = []

    def after_conv(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        last.update(conv=module, output=output)

    def before_norm(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if inputs and inputs[0] is last.get("output"):
            pairs.append((last["conv"], names[module]))

    hooks = [
        module.register_forward_hook(after_conv)
        if isinstance(module, nn.Conv2d)
        else module.register_forward_pre_hook(before_norm)
        for module in model.modules()
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d))
    ]
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for hook in hooks:
            hook.remove()
    return pairs


def folded_copy(model: Any, probe: torch.Tensor) -> Any:
    """An eval-mode, gradient-free copy of a classifier with its batch norms folded.

    A batch norm is folded when it reads a convolution's output directly (found by running
    ``probe`` through the model). If that output is also read elsewhere the fold would be
    wrong; the copy's outputs on ``probe`` are therefore compared with the model's, and the
    unfolded copy is returned when they differ by more than :data:`FOLD_TOLERANCE`.

    Args:
        model: A module taking preprocessed images and returning a dict of tensors (an
            :class:`~evoemotion.emotion.EmotionModel`) or a tensor. It is not modified.
        probe: A preprocessed input batch on the model's device.

    Returns:
        The copy (same class as ``model``), in eval mode, with no parameter requiring
        gradients.
    """
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    folded = copy.deepcopy(frozen)
    for conv, norm_name in _conv_bn_pairs(folded, probe):
        fused = fuse_conv_bn_eval(conv, folded.get_submodule(norm_name))
        conv.weight, conv.bias = fused.weight, fused.bias
        parent, _, attr = norm_name.rpartition(".")
        setattr(folded.get_submodule(parent) if parent else folded, attr, nn.Identity())
    folded.requires_grad_(False)
    with torch.no_grad():
        expected, got = frozen(probe), folded(probe)
    if isinstance(expected, torch.Tensor):
        expected, got = {"out": expected}, {"out": got}
    if all(
        torch.allclose(expected[key], got[key], rtol=0.0, atol=FOLD_TOLERANCE) for key in expected
    ):
        return folded
    return frozen
