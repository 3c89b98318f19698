"""Self-describing generator checkpoints: atomic writes, validated reads.

A generator file is a ``torch.save`` dict holding only tensors and plain data (it is read
with ``weights_only=True``, so loading never runs pickled code):

* ``format`` / ``format_version`` — marks an evoemotion generator file;
* ``target`` — the target space (kind, names, scales);
* ``architecture`` — the network's shape, activations and init seed;
* ``classifier`` — the classifier it was trained against, recorded as a run records it:
  absolute path (or ``default``), identity hash (sha256), output names, backbone;
* ``state_dict`` — the generator weights;
* ``training`` — optional: training options, optimiser state, RNG state, step and metric
  history, so ``cgen train --resume`` continues exactly where it stopped.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evoemotion import __version__
from evoemotion.atomic import atomic_write
from evoemotion.cgen.config import Architecture
from evoemotion.cgen.network import ConditionalGenerator
from evoemotion.cgen.targets import TargetSpace
from evoemotion.emotion.model import classifier_record, load_torch_checkpoint
from evoemotion.errors import CheckpointError, EvoEmotionError

#: Marker of an evoemotion generator checkpoint, and the layout version written.
CHECKPOINT_FORMAT = "evoemotion-cgen"
FORMAT_VERSION = 1


@dataclass
class GeneratorCheckpoint:
    """A loaded generator file.

    Attributes:
        path: Where it was read from.
        generator: The generator, in eval mode, on the requested device.
        classifier: Description of the classifier it was trained against, as a run records
            it (:func:`evoemotion.emotion.model.classifier_record`: ``source``, ``identity``,
            ``outputs``, ``backbone``).
        training: Trainer state (``Trainer.state_dict()``) or ``None`` for a bare generator.
    """

    path: Path
    generator: ConditionalGenerator
    classifier: dict[str, Any]
    training: dict[str, Any] | None = field(default=None)

    @property
    def steps(self) -> int:
        """Training steps the generator has had (0 when the file holds no training state)."""
        return int(self.training["step"]) if self.training else 0

    def check_classifier(self, model: Any) -> None:
        """Refuse a classifier other than the one the generator was trained against.

        Args:
            model: The loaded :class:`~evoemotion.emotion.EmotionModel`.

        Raises:
            CheckpointError: its identity hash differs (the message gives both).
        """
        if model.identity != self.classifier["identity"]:
            raise CheckpointError(
                f"{self.path} was trained against classifier {self.classifier['identity'][:12]} "
                f"({self.classifier['source'] or 'unnamed'}), not {model.identity[:12]}; pass "
                "the same `classifier`"
            )


def save_generator(
    path: str | os.PathLike,
    generator: ConditionalGenerator,
    model: Any,
    *,
    classifier_source: str = "",
    trainer: Any = None,
) -> Path:
    """Write a generator checkpoint atomically (temp file, fsync, rename).

    Args:
        path: Destination file (its folder is created).
        generator: The generator.
        model: The classifier it was trained against (its identity is recorded).
        classifier_source: How the classifier was named (path or ``"default"``; empty
            means the default).
        trainer: A :class:`~evoemotion.cgen.training.Trainer` whose state to include, so
            training can resume; ``None`` for a bare generator.

    Returns:
        The written path.
    """
    path = Path(path)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "evoemotion_version": __version__,
        "target": generator.space.to_dict(),
        "architecture": generator.arch.to_dict(),
        "classifier": classifier_record(classifier_source or "default", model),
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "training": trainer.state_dict() if trainer is not None else None,
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())
    return path


def load_generator(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> GeneratorCheckpoint:
    """Read and validate a generator checkpoint.

    Args:
        path: The file written by :func:`save_generator`.
        device: Where to put the generator.

    Returns:
        The loaded checkpoint.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated, not a generator file,
            from a newer format, or its weights do not match its description (one line
            naming the file).
    """
    path = Path(path).expanduser()
    data, _ = load_torch_checkpoint(
        path,
        file_format=CHECKPOINT_FORMAT,
        max_version=FORMAT_VERSION,
        kind="generator",
        label="generator",
    )
    try:
        space = TargetSpace.from_dict(data["target"])
        generator = ConditionalGenerator(space, Architecture.from_dict(data["architecture"]))
        generator.load_state_dict(data["state_dict"])
        classifier = dict(data["classifier"])
        if not isinstance(classifier.get("identity"), str):
            raise KeyError("classifier identity")
    except (KeyError, TypeError, ValueError, RuntimeError, EvoEmotionError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(f"{path} does not describe a valid generator ({reason})") from None
    return GeneratorCheckpoint(path, generator.to(device).eval(), classifier, data["training"])
