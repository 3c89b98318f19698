"""Training emotion models: seeded splits, frozen-feature head fitting, optional fine-tuning.

The default mode keeps the ImageNet backbone frozen: every training image's pooled features
are computed once per view (full image, mirror, crops — cached on disk, see
:mod:`evoemotion.emotion.features`) and the heads are fitted on them in seconds. Soft labels
(Emotion6's distributions) are trained with cross-entropy against the distribution; valence,
arousal and dominance with mean squared error on rows that have them, so datasets with
different targets train one model together. Each head stops early on its own validation loss.
A categorical head can instead learn the category each image was collected for
(``labels="category"``), or a mixture of both (``"mixed"``), and its loss can be balanced over
classes (``balance="weights"``: class-balanced weights; ``"prior"``: logit adjustment by the
training prior), so classes the raters seldom chose are still predicted.
Heads with several ensemble members train every member on its own loss (different
initialisation and dropout), and stop on the validation loss of the members' average.
``finetune`` then trains the whole network on images (use a GPU).

The split (seed, fractions, and the validation and test items of every dataset) is stored in
the model's metadata, so evaluation later uses exactly the held-out test rows.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from evoemotion import __version__
from evoemotion.emotion.datasets import (
    SPLIT_FRACTIONS,
    VALUE_NAMES,
    EmotionData,
    read_image,
    split_indices,
)
from evoemotion.emotion.features import VIEWS, extract_features, view_image
from evoemotion.emotion.model import (
    EmotionModel,
    build_model,
    head_specs,
    load_model,
    resolve_device,
)
from evoemotion.errors import ConfigError
from evoemotion.progress import Progress, relabelled

#: Targets a categorical head can learn (see :class:`TrainConfig`).
LABELS = ("soft", "category", "mixed")

#: Class-balance treatments of the categorical loss (see :class:`TrainConfig`).
BALANCES = ("none", "weights", "prior")


@dataclass
class TrainConfig:
    """Everything that decides a trained model (stored in its metadata).

    Attributes:
        backbone: Backbone name.
        weights: Backbone weights: ``"imagenet"``, ``"none"`` or a file.
        heads: Head names (``categorical``, ``va``, ``vad``, ``valence`` ...).
        labels: Targets of the categorical head: ``"soft"`` (rater distributions),
            ``"category"`` (one-hot collected-for category, see
            :attr:`~evoemotion.emotion.datasets.EmotionData.categories`) or ``"mixed"``
            (``(1 - mix) * soft + mix * category``).
        mix: Share of the category in ``"mixed"`` targets.
        balance: Class balance of the categorical loss: ``"none"``; ``"weights"`` (each
            class's target mass weighted by ``1 / (K * prior)``, so every class weighs alike
            in the loss); ``"prior"`` (logit adjustment: trained through ``logits + log
            prior``, predicting with the logits alone, which targets balanced error). The
            prior is the mean training target.
        hidden: Hidden width of the heads; 0 for linear heads.
        dropout: Head dropout.
        members: Ensemble size of every head (independently trained MLPs, averaged).
        views: Views of each training image whose features are training rows.
        size: Input side for training; it becomes the trained model's input size (what
            ``preprocess``, evaluation and classification use by default). None: the
            backbone's native size.
        extra_sizes: Further input sides whose features are added as training and validation
            rows (multi-resolution training), so the heads also work when scoring below the
            native size; test metrics are reported at each of them too.
        epochs: Maximum head-training epochs.
        batch_size: Head-training minibatch size.
        lr: Head learning rate (AdamW).
        l2: L2 penalty on the heads' weights (not biases), added to the mean loss as
            ``l2 * sum(w ** 2)``: the strength of a ridge / regularised logistic regression.
        patience: Epochs without validation improvement before a head stops.
        refit: After early stopping, train the heads afresh on training + validation rows
            for each head's best epoch count (no validation metrics are reported then).
        seed: Seed of the split, initialisation and minibatch order.
        fractions: Train, validation and test fractions of each dataset.
        finetune: Also train the whole network on images after fitting the heads.
        finetune_epochs: Epochs of whole-network training.
        finetune_lr: Learning rate of the backbone while fine-tuning.
        device: Torch device or ``"auto"``.
        autocast: bfloat16 autocast for feature extraction.
        cache_dir: Feature cache folder (None: default; "" disables caching).
        init: Start from this trained model (a file or ``"default"``) instead of a fresh
            one: its backbone, feature standardisation and the heads not named in
            ``heads`` are kept; only the named heads are (re)trained, on the same split
            (``seed`` and ``fractions`` must be the model's).
    """

    backbone: str = "efficientnet_lite0_ms"
    weights: str = "imagenet"
    heads: list[str] = field(default_factory=lambda: ["categorical", "va"])
    labels: str = "soft"
    mix: float = 0.5
    balance: str = "none"
    hidden: int = 128
    dropout: float = 0.5
    members: int = 1
    views: list[str] = field(default_factory=lambda: ["full", "flip"])
    size: int | None = None
    extra_sizes: list[int] = field(default_factory=list)
    epochs: int = 300
    batch_size: int = 512
    lr: float = 2e-3
    l2: float = 0.03
    patience: int = 20
    refit: bool = False
    seed: int = 0
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS
    finetune: bool = False
    finetune_epochs: int = 3
    finetune_lr: float = 1e-4
    device: str = "auto"
    autocast: bool = False
    cache_dir: str | None = None
    init: str | None = None

    def validate(self) -> None:
        """Check option values.

        Raises:
            ConfigError: naming the bad option and value.
        """
        if self.labels not in LABELS:
            raise ConfigError(f"labels {self.labels!r} must be one of {', '.join(LABELS)}")
        if self.balance not in BALANCES:
            raise ConfigError(f"balance {self.balance!r} must be one of {', '.join(BALANCES)}")
        if not 0 < self.mix < 1:
            raise ConfigError(f"mix must be between 0 and 1 (exclusive), got {self.mix}")
        bad = [v for v in self.views if v not in VIEWS]
        if bad or not self.views:
            raise ConfigError(f"views {self.views} must be among {', '.join(VIEWS)}")
        for name in ("members", "epochs", "batch_size", "patience", "finetune_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.l2 < 0:
            raise ConfigError(f"l2 must be >= 0, got {self.l2}")
        if self.hidden < 0 or not 0 <= self.dropout < 1:
            raise ConfigError(f"hidden {self.hidden} / dropout {self.dropout} out of range")
        for size in [self.size or 16, *self.extra_sizes]:
            if size < 16:
                raise ConfigError(f"input sizes must be >= 16 px, got {size}")


@dataclass
class Rows:
    """Features and targets of a set of rows (several datasets and views stacked).

    Attributes:
        features: ``(M, D)`` float32 backbone features.
        probs: ``(M, K)`` label distributions, NaN rows where a dataset has no classes.
        values: ``(M, 3)`` valence, arousal, dominance, NaN where unknown.
    """

    features: np.ndarray
    probs: np.ndarray
    values: np.ndarray


def class_names_of(datasets: list[EmotionData]) -> list[str]:
    """The class names shared by every dataset that has class labels (``[]`` if none).

    Raises:
        ConfigError: labelled datasets with different classes.
    """
    labelled = [d for d in datasets if d.class_names]
    for d in labelled[1:]:
        if d.class_names != labelled[0].class_names:
            raise ConfigError(
                f"datasets {labelled[0].name} and {d.name} have different classes "
                f"({labelled[0].class_names} vs {d.class_names}); train separate models"
            )
    return list(labelled[0].class_names) if labelled else []


def check_categories(datasets: list[EmotionData], labels: str) -> None:
    """With category targets, every dataset with classes must know its images' categories.

    Raises:
        ConfigError: a labelled dataset without categories (naming it and its classes), or
            no dataset with categories at all.
    """
    if labels == "soft":
        return
    for d in datasets:
        if d.class_names and d.categories is None:
            raise ConfigError(
                f"`labels` {labels}: dataset {d.name} has classes {d.class_names} but no "
                "collected-for categories (only rater distributions); use `labels` soft"
            )
    if not any(d.categories is not None for d in datasets):
        names = ", ".join(f"{d.name} (classes {d.class_names or 'none'})" for d in datasets)
        raise ConfigError(f"`labels` {labels}: no dataset has collected-for categories: {names}")


def targets(
    data: EmotionData,
    rows: np.ndarray,
    n_classes: int,
    labels: str = "soft",
    mix: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Categorical targets ``(n, K)`` and values ``(n, 3)`` of some rows (NaN where absent).

    Args:
        data: The dataset.
        rows: Row indices.
        n_classes: K, the classes of every labelled dataset.
        labels: ``"soft"``, ``"category"`` or ``"mixed"`` (see :class:`TrainConfig`); rows
            of unknown category (-1) have no target with ``"category"`` or ``"mixed"``.
        mix: Share of the category in ``"mixed"`` targets.

    Returns:
        The categorical targets and the valence / arousal / dominance values.
    """
    probs = np.full((len(rows), n_classes), np.nan)
    if data.probs is not None and data.class_names:
        probs = data.probs[rows]
        if labels != "soft" and data.categories is not None:
            category = data.categories[rows]
            onehot = np.where((category >= 0)[:, None], np.eye(n_classes)[category], np.nan)
            probs = onehot if labels == "category" else (1 - mix) * probs + mix * onehot
    values = np.stack([data.values[n][rows] for n in VALUE_NAMES], axis=1)
    return probs, values


def split_record(
    datasets: list[EmotionData], splits: dict[str, dict[str, np.ndarray]], seed: int, fractions
) -> dict:
    """The split as stored in a model: seed, fractions, per dataset val/test items and counts."""
    return {
        "seed": seed,
        "fractions": list(fractions),
        "datasets": {
            d.name: {
                "n_train": len(splits[d.name]["train"]),
                "val": [d.items[i] for i in splits[d.name]["val"]],
                "test": [d.items[i] for i in splits[d.name]["test"]],
            }
            for d in datasets
        },
    }


def gather_rows(
    model: EmotionModel,
    datasets: list[EmotionData],
    parts: dict[str, dict[str, np.ndarray]],
    part: str,
    *,
    views: list[str],
    config: TrainConfig,
    progress: Progress | None = None,
    sizes: list[int | None] | None = None,
) -> Rows:
    """Features (one row per image, view and size) and targets of one split part of datasets.

    Args:
        model: Model whose backbone embeds.
        datasets: The datasets.
        parts: Dataset name -> split part -> row indices.
        part: ``"train"``, ``"val"`` or ``"test"``.
        views: Views to stack.
        config: Precision and cache settings (and the size when ``sizes`` is not given).
        progress: Progress callback.
        sizes: Input sides to stack (None: the model's native size); default
            ``[config.size]``.

    Returns:
        The stacked rows.
    """
    n_classes = len(class_names_of(datasets))
    sizes = sizes or [config.size]
    total = sum(len(parts[d.name][part]) for d in datasets) * len(views) * len(sizes)
    feats, probs, values = [], [], []
    for data, view, size in itertools.product(datasets, views, sizes):
        rows = parts[data.name][part]
        p, v = targets(data, rows, n_classes, config.labels, config.mix)
        feats.append(
            extract_features(
                model,
                [data.path(i) for i in rows],
                view=view,
                size=size,
                autocast=config.autocast,
                cache_dir=False if config.cache_dir == "" else config.cache_dir,
                progress=relabelled(progress, f"features {part}", total),
            )
        )
        probs.append(p)
        values.append(v)
    return Rows(np.concatenate(feats), np.concatenate(probs), np.concatenate(values))


@dataclass(frozen=True)
class Balance:
    """Class-balance terms of the categorical loss (see :func:`balance_terms`).

    Attributes:
        weights: ``(K,)`` weight of each class's target mass (ones: unweighted).
        offset: ``(K,)`` added to the logits in the loss only (zeros: no logit adjustment).
    """

    weights: torch.Tensor
    offset: torch.Tensor


def class_prior(probs: np.ndarray) -> np.ndarray:
    """Mean categorical target over rows that have one, floored at 1e-6 and renormalised."""
    known = np.isfinite(probs).all(axis=1)
    prior = np.clip(probs[known].mean(axis=0), 1e-6, None)
    return prior / prior.sum()


def balance_terms(probs: np.ndarray, balance: str, device: torch.device | str = "cpu") -> Balance:
    """The loss terms of a class-balance treatment, from the training targets' prior.

    Args:
        probs: ``(M, K)`` training targets (NaN rows ignored).
        balance: ``"none"``, ``"weights"`` or ``"prior"`` (see :class:`TrainConfig`).
        device: Device of the returned tensors.

    Returns:
        ``weights = 1 / (K * prior)`` for ``"weights"`` (else ones) and ``offset = log
        prior`` for ``"prior"`` (else zeros).
    """
    k = probs.shape[1]
    prior = class_prior(probs) if probs.size and k else np.full(k, 1.0 / max(k, 1))
    weights = 1.0 / (k * prior) if balance == "weights" else np.ones(k)
    offset = np.log(prior) if balance == "prior" else np.zeros(k)
    return Balance(
        torch.as_tensor(weights, dtype=torch.float32, device=device),
        torch.as_tensor(offset, dtype=torch.float32, device=device),
    )


def head_losses(
    model: EmotionModel,
    out: dict[str, torch.Tensor],
    probs: torch.Tensor,
    values: torch.Tensor,
    balance: Balance | None = None,
    only: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-head loss on rows that have the head's targets (0 for a head with none).

    Categorical heads: cross-entropy against the target distribution, ``-sum_k w_k p_k log
    softmax(logits + offset)_k`` with the class-balance terms (unweighted and unadjusted
    without ``balance``). Regression heads: mean squared error over the head's outputs, on
    the rating scale. ``only`` restricts the losses to these heads.
    """
    losses = {}
    for spec in model.head_specs:
        if only is not None and spec.name not in only:
            continue
        if spec.kind == "categorical":
            mask = torch.isfinite(probs).all(dim=1)
            logits = out["logits"][mask]
            target = probs[mask]
            if balance is not None:
                logits, target = logits + balance.offset, target * balance.weights
            loss = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
        else:
            target = values[:, [VALUE_NAMES.index(name) for name in spec.outputs]]
            known = torch.isfinite(target)
            pred = torch.stack([out[name] for name in spec.outputs], dim=1)
            # select before squaring: a NaN target must not reach the gradient
            loss = (pred[known] - target[known]) ** 2
        losses[spec.name] = loss.mean() if loss.numel() else out["embedding"].sum() * 0.0
    return losses


def weight_penalty(model: EmotionModel, only: list[str] | None = None) -> torch.Tensor:
    """Sum of squared weights of the heads' linear layers (biases excluded).

    Args:
        model: The model.
        only: Count only these heads; default all.
    """
    return sum(
        (layer.weight**2).sum()
        for name, head in model.heads.items()
        if only is None or name in only
        for layer in head.modules()
        if isinstance(layer, torch.nn.Linear)
    )


def training_loss(
    model: EmotionModel,
    embedding: torch.Tensor,
    probs: torch.Tensor,
    values: torch.Tensor,
    l2: float,
    balance: Balance | None = None,
    only: list[str] | None = None,
) -> torch.Tensor:
    """The objective a training step minimises, averaged over ensemble members.

    Every member is scored alone, so members learn independently rather than co-adapting
    through their average: ``mean over members of (sum of head losses + l2 * penalty)``.

    Args:
        model: The model (heads in training mode for dropout).
        embedding: ``(N, D)`` backbone features of the batch.
        probs: ``(N, K)`` label distributions (NaN rows where unknown).
        values: ``(N, 3)`` valence, arousal, dominance (NaN where unknown).
        l2: Weight of :func:`weight_penalty`.
        balance: Class-balance terms of the categorical loss.
        only: Train only these heads (their losses and weight penalties); default all.

    Returns:
        The scalar loss.
    """
    members = model.members
    loss = sum(
        sum(
            head_losses(
                model, model.predict_from_embedding(embedding, k), probs, values, balance, only
            ).values()
        )
        for k in range(members)
    )
    return (loss + l2 * weight_penalty(model, only)) / members


def _check_targets(model: EmotionModel, rows: Rows, names: list[str]) -> None:
    """Every head trained must have training targets.

    Raises:
        ConfigError: a head whose targets no dataset provides.
    """
    for spec in model.head_specs:
        if spec.name not in names:
            continue
        if spec.kind == "categorical":
            present = np.isfinite(rows.probs).all(axis=1).any() if rows.probs.size else False
            missing = [] if present else ["class labels"]
        else:
            missing = [
                n
                for n in spec.outputs
                if not np.isfinite(rows.values[:, VALUE_NAMES.index(n)]).any()
            ]
        if missing:
            raise ConfigError(f"head {spec.name!r} has no training data for {', '.join(missing)}")


def fit_heads(
    model: EmotionModel,
    train: Rows,
    val: Rows | None,
    *,
    config: TrainConfig,
    progress: Progress | None = None,
    stop_at: dict[str, int] | None = None,
    only: list[str] | None = None,
) -> dict:
    """Fit the heads on cached features; each head keeps its best validation epoch.

    Sets the model's feature standardisation from the training features, unless ``only``
    names the heads to fit (the others and the standardisation stay as they are). Without
    validation rows (refitting), each head is kept as it is after its epoch count in
    ``stop_at``.

    Args:
        model: Model whose heads are trained (backbone untouched).
        train: Training rows.
        val: Validation rows (early stopping), or None to train for ``stop_at`` epochs.
        config: Optimisation settings.
        progress: Progress callback (stage ``"heads"``, one unit per epoch).
        stop_at: ``{head: epochs}``, used only when ``val`` is None.
        only: Fit only these heads, keeping the standardisation; default all heads.

    Returns:
        ``{head: {"best_epoch", "val_loss"}}`` (``val_loss`` NaN when refitting).

    Raises:
        ConfigError: a head without training targets, or neither validation rows nor
            ``stop_at``.
    """
    if val is None and not stop_at:
        raise ConfigError("fitting heads needs validation rows or an epoch count per head")
    names = list(only) if only is not None else [s.name for s in model.head_specs]
    _check_targets(model, train, names)
    device = model.feature_mean.device
    _reset_heads(model, names, config.seed)
    if only is None:
        _standardise(model, torch.as_tensor(train.features, device=device))
    train_t, val_t = _tensors(train, device), None if val is None else _tensors(val, device)
    balance = balance_terms(train.probs, config.balance, device)
    optimiser = torch.optim.Adam(
        [p for name in names for p in model.heads[name].parameters()], lr=config.lr
    )
    best = {n: {"val_loss": float("inf"), "best_epoch": 0} for n in names}
    best_state = {n: copy.deepcopy(model.heads[n].state_dict()) for n in names}

    def keep(name: str, epoch: int, val_loss: float) -> None:
        best[name] = {"val_loss": val_loss, "best_epoch": epoch}
        best_state[name] = copy.deepcopy(model.heads[name].state_dict())

    generator = torch.Generator().manual_seed(config.seed)
    epochs = config.epochs if val is not None else max(stop_at[n] for n in names)
    for epoch in range(1, epochs + 1):
        _train_epoch(model, train_t, generator, optimiser, config, balance, only)
        if val is None:
            for name in (n for n in names if stop_at[n] == epoch):
                keep(name, epoch, float("nan"))
            if progress:
                progress("refit heads", 1, epochs, None)
            continue
        with torch.no_grad():
            val_losses = head_losses(
                model, model.predict_from_embedding(val_t[0]), *val_t[1:], balance, only
            )
        for name, value in val_losses.items():
            if value.item() < best[name]["val_loss"]:
                keep(name, epoch, value.item())
        if progress:
            progress("heads", 1, epochs, {n: round(v.item(), 4) for n, v in val_losses.items()})
        if all(epoch - b["best_epoch"] >= config.patience for b in best.values()):
            break
    for name in names:
        model.heads[name].load_state_dict(best_state[name])
    model.eval()
    return best


def _reset_heads(model: EmotionModel, names: list[str], seed: int) -> None:
    """Re-initialise the named heads' linear layers, deterministically for ``seed``."""
    torch.manual_seed(seed)
    for name in names:
        for layer in model.heads[name].modules():
            if isinstance(layer, torch.nn.Linear):
                layer.reset_parameters()


def _standardise(model: EmotionModel, x: torch.Tensor) -> None:
    """Set the model's feature standardisation from training features ``x``."""
    model.feature_mean.copy_(x.mean(dim=0))
    # near-constant features must not be blown up into noise: floor their scale at a
    # twentieth of the typical feature spread
    std = x.std(dim=0)
    model.feature_scale.copy_(std.clamp_min(0.05 * float(std.mean()) + 1e-12))


def _tensors(rows: Rows, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Features, class probabilities and values of ``rows`` as float32 tensors."""
    return tuple(
        torch.as_tensor(a, dtype=torch.float32, device=device)
        for a in (rows.features, rows.probs, rows.values)
    )


def _train_epoch(
    model: EmotionModel,
    train_t: tuple[torch.Tensor, ...],
    generator: torch.Generator,
    optimiser: torch.optim.Optimizer,
    config: TrainConfig,
    balance: Balance,
    only: list[str] | None,
) -> None:
    """One epoch of mini-batch steps over the training tensors, in a shuffled order."""
    device = train_t[0].device
    model.heads.train()
    order = torch.randperm(len(train_t[0]), generator=generator).to(device)
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        loss = training_loss(model, *(t[idx] for t in train_t), config.l2, balance, only)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.heads.eval()


def finetune(
    model: EmotionModel,
    datasets: list[EmotionData],
    parts: dict[str, dict[str, np.ndarray]],
    config: TrainConfig,
    progress: Progress | None = None,
) -> None:
    """Train the whole network on training images (random views), after :func:`fit_heads`.

    The backbone learns at ``finetune_lr``, the heads at a tenth of ``lr``; the feature
    standardisation stays fixed. Sets ``metadata["finetuned"]``.

    Args:
        model: A model with fitted heads (on its training device).
        datasets: The datasets.
        parts: Dataset name -> split part -> row indices.
        config: Settings (epochs, learning rates, batch size, size, seed).
        progress: Progress callback (stage ``"finetune"``, one unit per image).
    """
    n_classes = len(class_names_of(datasets))
    device = model.feature_mean.device
    samples = [(d, int(i)) for d in datasets for i in parts[d.name]["train"]]
    train_probs = np.concatenate(
        [
            targets(d, parts[d.name]["train"], n_classes, config.labels, config.mix)[0]
            for d in datasets
        ]
    )
    balance = balance_terms(train_probs, config.balance, device)
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.Adam(
        [
            {"params": model.backbone.parameters(), "lr": config.finetune_lr},
            {"params": model.heads.parameters(), "lr": config.lr / 10},
        ]
    )
    batch = min(config.batch_size, 32)
    total = len(samples) * config.finetune_epochs
    model.train()
    for _ in range(config.finetune_epochs):
        order = rng.permutation(len(samples))
        for start in range(0, len(samples), batch):
            chosen = [samples[j] for j in order[start : start + batch]]
            images = [
                view_image(read_image(d.path(i)), VIEWS[rng.integers(len(VIEWS))])
                for d, i in chosen
            ]
            x = torch.cat(
                [model.preprocess(torch.from_numpy(im.copy())[None], config.size) for im in images]
            ).to(device)
            labels = [
                targets(d, np.array([i]), n_classes, config.labels, config.mix) for d, i in chosen
            ]
            probs = torch.as_tensor(np.concatenate([p for p, _ in labels]), dtype=torch.float32)
            values = torch.as_tensor(np.concatenate([v for _, v in labels]), dtype=torch.float32)
            loss = training_loss(
                model, model.backbone(x), probs.to(device), values.to(device), config.l2, balance
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if progress:
                progress("finetune", len(chosen), total, {"loss": round(loss.item(), 4)})
    model.eval()
    model.metadata["finetuned"] = True


def initial_model(config: TrainConfig, class_names: list[str]) -> EmotionModel:
    """The model training starts from: a fresh one, or ``config.init`` with new heads.

    With ``config.init`` the heads named in ``config.heads`` are replaced by untrained ones
    of the configured shape; every other head, the backbone and the feature standardisation
    are the base model's.

    Args:
        config: Training settings.
        class_names: Classes of a categorical head.

    Returns:
        The model on the training device (input size ``config.size`` when given).

    Raises:
        ConfigError: bad head names, or a split differing from the base model's.
        CheckpointError: backbone weights or the base model not found.
    """
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # random-weight backbones ("none") are part of the model
    if config.init is None:
        model = build_model(
            config.backbone,
            config.heads,
            class_names,
            weights=config.weights,
            hidden=config.hidden,
            dropout=config.dropout,
            members=config.members,
        ).to(device)
    else:
        base = load_model(config.init, device=device)
        split = base.metadata.get("split", {})
        if (split.get("seed"), split.get("fractions")) != (config.seed, list(config.fractions)):
            raise ConfigError(
                f"`init` {config.init}: its split (seed {split.get('seed')}, fractions "
                f"{split.get('fractions')}) differs from `seed` {config.seed} `fractions` "
                f"{','.join(map(str, config.fractions))}; retrained heads must keep its test rows"
            )
        new = {
            h.name: h
            for h in head_specs(
                config.heads, class_names, config.hidden, config.dropout, members=config.members
            )
        }
        specs = [new.pop(h.name, h) for h in base.head_specs] + list(new.values())
        model = EmotionModel(base.backbone, base.info, specs, copy.deepcopy(base.metadata))
        kept = {
            k: v
            for k, v in base.state_dict().items()
            if not k.startswith("heads.") or k.split(".")[1] not in config.heads
        }
        model.load_state_dict(kept, strict=False)
        model = model.to(device).eval()
    if config.size:  # the model's input side is the one it is trained at
        model.info = replace(model.info, input_size=config.size)
    return model


def fit_on_parts(
    model: EmotionModel,
    datasets: list[EmotionData],
    parts: dict[str, dict[str, np.ndarray]],
    config: TrainConfig,
    progress: Progress | None = None,
) -> dict:
    """Fit the configured heads on the ``train`` parts, stopping early on ``val``, refit.

    Args:
        model: From :func:`initial_model`.
        datasets: The datasets.
        parts: Dataset name -> ``{"train", "val", ...}`` row indices.
        config: Training settings (``refit``: then train afresh on train + val rows for each
            head's chosen epoch count).
        progress: Progress callback.

    Returns:
        The early-stopping history ``{head: {"best_epoch", "val_loss"}}``.
    """
    only = list(config.heads) if config.init else None
    sizes = [config.size, *config.extra_sizes]
    rows_of = {"config": config, "progress": progress, "sizes": sizes}
    train_rows = gather_rows(model, datasets, parts, "train", views=config.views, **rows_of)
    val_rows = gather_rows(model, datasets, parts, "val", views=["full"], **rows_of)
    history = fit_heads(model, train_rows, val_rows, config=config, progress=progress, only=only)
    if config.refit:  # the chosen epoch counts, now on the training + validation images
        both = {
            n: {"train+val": np.sort(np.concatenate([p["train"], p["val"]]))}
            for n, p in parts.items()
        }
        rows = gather_rows(model, datasets, both, "train+val", views=config.views, **rows_of)
        stop_at = {n: h["best_epoch"] for n, h in history.items()}
        fit_heads(model, rows, None, config=config, progress=progress, stop_at=stop_at, only=only)
    return history


def score_parts(
    model: EmotionModel,
    datasets: list[EmotionData],
    parts: dict[str, dict[str, np.ndarray]],
    evaluations: list[tuple[str, int | None]],
    config: TrainConfig,
) -> dict:
    """Metrics of every dataset on split parts at input sizes.

    Args:
        model: The trained model.
        datasets: The datasets.
        parts: Dataset name -> part -> row indices.
        evaluations: ``(part, size)`` pairs.
        config: Precision and cache settings; ``config.size`` names the plain keys.

    Returns:
        ``{part or "part@SIZEpx": {dataset: metrics}}``
        (:func:`~evoemotion.emotion.evaluate.evaluate_rows`).
    """
    from evoemotion.emotion.evaluate import evaluate_rows

    return {
        part if size == config.size else f"{part}@{size}px": {
            d.name: evaluate_rows(
                model,
                d,
                parts[d.name][part],
                size=size,
                autocast=config.autocast,
                cache_dir=config.cache_dir,
            )
            for d in datasets
        }
        for part, size in evaluations
    }


def _prepare(datasets: list[EmotionData], config: TrainConfig) -> list[str]:
    """Validate settings and datasets; return the class names."""
    config.validate()
    if not datasets:
        raise ConfigError("training needs at least one dataset")
    class_names = class_names_of(datasets)
    if "categorical" in config.heads:
        check_categories(datasets, config.labels)
    return class_names


def train(
    datasets: list[EmotionData],
    config: TrainConfig,
    specs: list[str] | None = None,
    progress: Progress | None = None,
) -> EmotionModel:
    """Split, extract features, fit heads (and optionally fine-tune), evaluate on test.

    Args:
        datasets: Checked datasets (see :func:`~evoemotion.emotion.datasets.check_images`).
        config: Training settings.
        specs: The dataset SPECs the datasets came from (recorded in the metadata).
        progress: Progress callback.

    Returns:
        The trained model (eval mode, on the training device) whose metadata holds the
        backbone, heads, data, split, seed, config, validation/test metrics and version.
        Starting from a model (``config.init``), the base model's records of datasets not
        given here (their split, metrics and specs) and of the heads kept are carried over.

    Raises:
        ConfigError: bad settings, or heads without training data.
        CheckpointError: backbone weights not found.
    """
    class_names = _prepare(datasets, config)
    model = initial_model(config, class_names)
    base = copy.deepcopy(model.metadata) if config.init else {}
    parts = {d.name: split_indices(d, config.seed, config.fractions) for d in datasets}
    history = fit_on_parts(model, datasets, parts, config, progress)
    if config.finetune:
        finetune(model, datasets, parts, config, progress)
    evaluations = (
        [("test", config.size)] if config.refit else [("val", config.size), ("test", config.size)]
    )
    evaluations += [("test", size) for size in config.extra_sizes]
    metrics = score_parts(model, datasets, parts, evaluations, config)
    split = split_record(datasets, parts, config.seed, config.fractions)
    names = [d.name for d in datasets]
    specs = list(specs or names)
    if base:  # records of the datasets and heads this run did not touch
        for key, per_data in metrics.items():
            per_data.update(
                {k: v for k, v in base.get("metrics", {}).get(key, {}).items() if k not in names}
            )
        split["datasets"].update(
            {k: v for k, v in base["split"]["datasets"].items() if k not in names}
        )
        given = dict(zip(names, specs, strict=True))
        base_names = list(base["split"]["datasets"])  # in the order of the base's specs
        base_specs = base.get("data", {}).get("specs", base_names)
        specs = [given.pop(n, s) for n, s in zip(base_names, base_specs, strict=True)]
        specs += list(given.values())
        history = {**base.get("history", {}), **history}
    model.metadata.update(
        {
            "version": __version__,
            "backbone": model.info.name,
            "backbone_weights": model.info.weights,
            "heads": [h.to_dict() for h in model.head_specs],
            "data": {
                "specs": specs,
                "datasets": {
                    **base.get("data", {}).get("datasets", {}),
                    **{d.name: len(d) for d in datasets},
                },
                "notes": [n for d in datasets for n in d.notes],
            },
            "split": split,
            "seed": config.seed,
            "train_config": {k: v for k, v in asdict(config).items() if k != "cache_dir"},
            "history": history,
            "metrics": metrics,
            "scoring_size": model.input_size,
        }
    )
    if base:
        model.metadata["base_model"] = {
            "source": str(config.init),
            "train_config": base.get("train_config"),
        }
    return model


def fold_parts(
    datasets: list[EmotionData], config: TrainConfig, folds: int
) -> list[dict[str, dict[str, np.ndarray]]]:
    """Cross-validation folds over the training + validation rows (never the test rows).

    Each dataset's train + validation rows are dealt into ``folds`` folds, stratified by
    ``strata`` and fixed by the seed. In round k, fold k is evaluated (``"test"``), fold
    k + 1 stops the training early (``"val"``) and the rest trains.

    Args:
        datasets: The datasets.
        config: Seed and split fractions.
        folds: Number of folds (>= 3).

    Returns:
        One ``{dataset: {"train", "val", "test"}}`` per round.

    Raises:
        ConfigError: fewer than three folds.
    """
    if folds < 3:
        raise ConfigError(f"cross-validation needs at least 3 folds, got {folds}")
    assignment = {}
    for d in datasets:
        split = split_indices(d, config.seed, config.fractions)
        pool = np.sort(np.concatenate([split["train"], split["val"]]))
        rng = np.random.default_rng([config.seed, folds, len(pool)])
        fold = np.empty(len(pool), dtype=int)
        for stratum in np.unique(d.strata[pool]):
            members = rng.permutation(np.flatnonzero(d.strata[pool] == stratum))
            fold[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
        assignment[d.name] = (pool, fold)
    return [
        {
            name: {
                "train": pool[(fold != k) & (fold != (k + 1) % folds)],
                "val": pool[fold == (k + 1) % folds],
                "test": pool[fold == k],
            }
            for name, (pool, fold) in assignment.items()
        }
        for k in range(folds)
    ]


def cross_validate(
    datasets: list[EmotionData],
    config: TrainConfig,
    folds: int = 4,
    progress: Progress | None = None,
) -> dict:
    """Score a training recipe by K-fold cross-validation over train + validation rows.

    Every round trains the recipe as :func:`train` would (early stopping on the next fold,
    refitting with ``config.refit``) and evaluates the held-out fold at the training size
    and every extra size. The test split is never touched.

    Args:
        datasets: Checked datasets.
        config: The recipe.
        folds: Number of folds.
        progress: Progress callback (stage ``"fold K/N"`` between rounds).

    Returns:
        ``{"folds": [metrics per round], "mean": {key: {dataset: {summary: mean}}},
        "config": ...}``; metrics as :func:`train` stores them, summaries as
        :func:`summary_metrics`.
    """
    class_names = _prepare(datasets, config)
    rounds = []
    for k, parts in enumerate(fold_parts(datasets, config, folds)):
        if progress:
            progress(f"fold {k + 1}/{folds}", 1, 1, None)
        model = initial_model(config, class_names)
        fit_on_parts(model, datasets, parts, config, progress)
        sizes = [config.size, *config.extra_sizes]
        rounds.append(score_parts(model, datasets, parts, [("test", s) for s in sizes], config))
    mean = {
        key: {
            name: {
                metric: float(np.mean([summary_metrics(r[key][name])[metric] for r in rounds]))
                for metric in summary_metrics(rounds[0][key][name])
            }
            for name in rounds[0][key]
        }
        for key in rounds[0]
    }
    config_record = {k: v for k, v in asdict(config).items() if k != "cache_dir"}
    return {"folds": rounds, "mean": mean, "config": config_record, "n_folds": folds}


def summary_metrics(metrics: dict) -> dict[str, float]:
    """The scalar metrics of one dataset's evaluation, flattened for tables and means.

    Args:
        metrics: One dataset's result of
            :func:`~evoemotion.emotion.evaluate.evaluate_rows`.

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``kl`` (rater view),
        ``category_accuracy``, ``category_balanced_accuracy``,
        ``category_balanced_accuracy_without_neutral``, ``category_macro_f1``,
        ``category_recall_CLASS`` per class, and ``va_mse`` / ``MEASURE_mse``, where present.
    """
    out: dict[str, float] = {}
    rater = metrics.get("categorical", {})
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "kl"):
        if key in rater:
            out[key] = rater[key]
    category = metrics.get("category", {})
    for key in ("accuracy", "balanced_accuracy", "balanced_accuracy_without_neutral", "macro_f1"):
        if key in category:
            out[f"category_{key}"] = category[key]
    for name, c in category.get("per_class", {}).items():
        out[f"category_recall_{name}"] = c["recall"]
    out.update({f"{n}_mse": metrics[n]["mse"] for n in VALUE_NAMES if n in metrics})
    if "va_mse" in metrics:
        out["va_mse"] = metrics["va_mse"]
    return out
