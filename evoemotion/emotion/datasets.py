"""Emotion datasets as aligned arrays, their adapters, image checks and seeded splits.

Adapters (all return :class:`EmotionData`):

- ``emotion6``: Cornell Emotion6 ``ground_truth.txt`` — 7-class distribution + V/A (1-9).
- ``oasis``: OASIS ``OASIS.csv`` (CR line endings, padded themes) — V/A rescaled from its
  1-7 scale to 1-9 (``1 + (x - 1) * 8 / 6``); dominance derived from the theme words with
  the Warriner lexicon when one is given.
- ``folder``: one sub-folder per class (FI, ArtPhoto, EmoSet-style exports) — one-hot labels.
- ``csv``: a generic CSV with a path column and either a class label, or valence/arousal
  (/dominance) on 1-9, and/or a text column rated with the lexicon.

A dataset SPEC on the command line is ``KIND`` or ``KIND:PATH`` (``emotion6`` and ``oasis``
default to the shared data folder, see :func:`evoemotion.paths.data_root`).
"""

from __future__ import annotations

import csv
import io
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from evoemotion.emotion.lexicon import Lexicon
from evoemotion.errors import DataError
from evoemotion.paths import data_root
from evoemotion.progress import Progress

#: Image file extensions the folder adapter picks up.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

#: The regression targets every adapter fills (NaN where a dataset has none).
VALUE_NAMES = ("valence", "arousal", "dominance")

#: Default train / validation / test fractions of a seeded split.
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)

#: Emotion6's classes, in the order of its ground-truth columns.
EMOTION6_CLASSES = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")


@dataclass
class EmotionData:
    """Images with their labels as aligned arrays.

    Attributes:
        name: Dataset name; with an item it forms the row key ``"name:item"``.
        root: Folder the items are relative to.
        items: Relative image paths.
        class_names: Categorical classes; ``[]`` when the data has no class labels.
        probs: ``(N, K)`` label distributions, NaN rows where unlabelled; ``None`` if K = 0.
        values: ``"valence"``, ``"arousal"``, ``"dominance"`` -> ``(N,)`` floats on 1-9, NaN
            where unknown.
        strata: ``(N,)`` ints that splits keep balanced (argmax class or a category).
        notes: How labels were derived (rescaling, lexicon coverage ...).
        categories: ``(N,)`` index into ``class_names`` of the class each image was collected
            for (a folder or a label column), -1 where unknown; ``None`` when the dataset has
            no such labels (only rater distributions, or no classes).
    """

    name: str
    root: Path
    items: list[str]
    class_names: list[str]
    probs: np.ndarray | None
    values: dict[str, np.ndarray]
    strata: np.ndarray
    notes: list[str] = field(default_factory=list)
    categories: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def keys(self) -> list[str]:
        """Row keys ``"name:item"``, stable across loads (used to save splits)."""
        return [f"{self.name}:{item}" for item in self.items]

    def path(self, i: int) -> Path:
        """Absolute path of row ``i``'s image."""
        return self.root / self.items[i]

    def targets(self) -> list[str]:
        """Names of the targets present: ``"probs"`` and value names with any known value."""
        present = ["probs"] if self.probs is not None and np.isfinite(self.probs).any() else []
        return present + [n for n in VALUE_NAMES if np.isfinite(self.values[n]).any()]

    def subset(self, index: np.ndarray | list[int]) -> EmotionData:
        """Return the rows ``index`` as a new dataset (same name, root and classes)."""
        index = np.asarray(index, dtype=int)
        return EmotionData(
            name=self.name,
            root=self.root,
            items=[self.items[i] for i in index],
            class_names=list(self.class_names),
            probs=None if self.probs is None else self.probs[index],
            values={k: v[index] for k, v in self.values.items()},
            strata=self.strata[index],
            notes=list(self.notes),
            categories=None if self.categories is None else self.categories[index],
        )


def _empty_values(n: int) -> dict[str, np.ndarray]:
    return {name: np.full(n, np.nan) for name in VALUE_NAMES}


def _read_text(path: Path) -> str:
    """Read a label file as text with any line endings (CR, LF, CRLF) turned into LF.

    Raises:
        DataError: the file is missing or not UTF-8 / Latin-1 text.
    """
    if not path.is_file():
        raise DataError(f"label file {path} not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _float(value: str, path: Path, line: int, column: str) -> float:
    """Parse a number or raise a DataError naming file, line and column."""
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"{path} line {line}: column {column!r} is not a number: {value!r}"
        ) from err


def load_emotion6(root: str | Path | None = None) -> EmotionData:
    """Load Cornell Emotion6 (``ground_truth.txt`` + ``images/``).

    Args:
        root: The ``emotion6`` folder; default ``data_root() / "emotion6"``.

    Returns:
        1,980 rows with 7-class distributions and valence/arousal (1-9). Each image's
        category is the keyword folder it was collected for, except ``neutral`` where the
        raters' top label is neutral (no folder is neutral).

    Raises:
        DataError: missing or malformed label file.
    """
    root = Path(root) if root else data_root() / "emotion6"
    path = root / "ground_truth.txt"
    rows = [r for r in csv.reader(io.StringIO(_read_text(path)), delimiter="\t") if r]
    if not rows or len(rows[0]) != 3 + len(EMOTION6_CLASSES):
        raise DataError(f"{path}: expected a header of {3 + len(EMOTION6_CLASSES)} columns")
    items, probs, values = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise DataError(f"{path} line {line}: {len(row)} columns, expected {len(rows[0])}")
        items.append(row[0].strip())
        values.append(
            [_float(row[1], path, line, "valence"), _float(row[2], path, line, "arousal")]
        )
        probs.append([_float(v, path, line, "prob") for v in row[3:]])
    probs_arr = np.asarray(probs, dtype=np.float64)
    probs_arr /= probs_arr.sum(axis=1, keepdims=True)
    vals = _empty_values(len(items))
    vals["valence"], vals["arousal"] = np.asarray(values, dtype=np.float64).T
    folders = [item.split("/", 1)[0] for item in items]
    neutral = EMOTION6_CLASSES.index("neutral")
    categories = np.where(
        probs_arr.argmax(axis=1) == neutral,
        neutral,
        [EMOTION6_CLASSES.index(f) if f in EMOTION6_CLASSES else -1 for f in folders],
    )
    return EmotionData(
        name="emotion6",
        root=root / "images",
        items=items,
        class_names=list(EMOTION6_CLASSES),
        probs=probs_arr,
        values=vals,
        strata=probs_arr.argmax(axis=1),
        notes=[
            "Emotion6: soft 7-class labels (ground-truth distributions), V/A on 1-9; "
            "categories: the keyword folder, neutral where the raters' top label is neutral"
        ],
        categories=categories,
    )


def rescale(x: np.ndarray, low: float, high: float, to: tuple[float, float] = (1.0, 9.0)):
    """Map ratings linearly from ``[low, high]`` to ``to``."""
    return to[0] + (np.asarray(x, dtype=np.float64) - low) * (to[1] - to[0]) / (high - low)


def load_oasis(root: str | Path | None = None, lexicon: Lexicon | None = None) -> EmotionData:
    """Load OASIS (``OASIS.csv`` with CR line endings + ``images/<Theme>.jpg``).

    Args:
        root: The ``oasis`` folder; default ``data_root() / "oasis"``.
        lexicon: If given, dominance is derived from the theme words (NaN where none found).

    Returns:
        900 rows with valence/arousal rescaled from 1-7 to 1-9 and optional dominance.

    Raises:
        DataError: missing file, missing column or a non-numeric rating.
    """
    root = Path(root) if root else data_root() / "oasis"
    path = root / "OASIS.csv"
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    needed = ["Theme", "Category", "Valence_mean", "Arousal_mean"]
    missing = [c for c in needed if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}")
    items, themes, categories, va = [], [], [], []
    for line, row in enumerate(reader, start=2):
        theme = row["Theme"].strip()
        items.append(f"{theme}.jpg")
        themes.append(theme)
        categories.append(row["Category"].strip())
        va.append([_float(row[c], path, line, c) for c in ("Valence_mean", "Arousal_mean")])
    values = _empty_values(len(items))
    va_arr = rescale(np.asarray(va), 1.0, 7.0)
    values["valence"], values["arousal"] = va_arr.T
    notes = ["OASIS: valence/arousal rescaled from 1-7 to 1-9 as 1 + (x - 1) * 8 / 6"]
    if lexicon is not None:
        values["dominance"] = np.array([lexicon.rate(t)["dominance"] for t in themes])
        found = int(np.isfinite(values["dominance"]).sum())
        notes.append(
            f"OASIS: dominance from theme words with {lexicon.path.name} (Warriner norms, "
            f"lemmatised; {found}/{len(items)} images rated)"
        )
    kinds = sorted(set(categories))
    return EmotionData(
        name="oasis",
        root=root / "images",
        items=items,
        class_names=[],
        probs=None,
        values=values,
        strata=np.array([kinds.index(c) for c in categories]),
        notes=notes,
    )


def load_folder(root: str | Path) -> EmotionData:
    """Load a folder-per-class layout: ``root/<class>/**/<image>``; labels are one-hot.

    Args:
        root: Folder whose sub-folders name the classes (sorted alphabetically).

    Returns:
        One row per image file.

    Raises:
        DataError: the folder is missing or holds no class folder with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} not found")
    classes, items, labels = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if files:
            classes.append(folder.name)
            items += [p.relative_to(root).as_posix() for p in files]
            labels += [len(classes) - 1] * len(files)
    if not items:
        raise DataError(f"dataset folder {root} has no class sub-folder holding images")
    labels_arr = np.asarray(labels)
    return EmotionData(
        name=root.name,
        root=root,
        items=items,
        class_names=classes,
        probs=np.eye(len(classes))[labels_arr],
        values=_empty_values(len(items)),
        strata=labels_arr,
        notes=[f"{root.name}: one-hot labels from {len(classes)} class folders"],
        categories=labels_arr,
    )


def _column(fields: list[str], names: tuple[str, ...]) -> str | None:
    """The first header in ``fields`` matching one of ``names`` (case-insensitive)."""
    lowered = {f.strip().lower(): f for f in fields}
    return next((lowered[n] for n in names if n in lowered), None)


def load_csv(path: str | Path, lexicon: Lexicon | None = None) -> EmotionData:
    """Load a generic CSV: a path column plus a label, V/A(/D) values and/or a text column.

    Recognised headers (case-insensitive): path ``path|file|image|filename``; class
    ``label|class|emotion``; values ``valence|v``, ``arousal|a``, ``dominance|d`` (1-9);
    ``text`` (rated with ``lexicon`` for values the row lacks). Paths are relative to the
    CSV's folder. Comma, tab or semicolon separated.

    Args:
        path: The CSV file.
        lexicon: Lexicon for the text column.

    Returns:
        One row per CSV row.

    Raises:
        DataError: missing file, no path column, nothing to learn from, or a bad number.
    """
    path = Path(path)
    text = _read_text(path)
    header = text.split("\n", 1)[0]
    delimiter = max(",\t;", key=header.count)
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    fields = reader.fieldnames or []
    path_col = _column(fields, ("path", "file", "image", "filename"))
    label_col = _column(fields, ("label", "class", "emotion"))
    value_cols = {n: _column(fields, (n, n[0])) for n in VALUE_NAMES}
    text_col = _column(fields, ("text",))
    if path_col is None:
        raise DataError(f"{path} has no path column (path, file, image or filename)")
    if not (label_col or text_col and lexicon or any(value_cols.values())):
        raise DataError(f"{path} has no label, valence/arousal/dominance or text column")
    items, labels, rows = [], [], []
    for line, row in enumerate(reader, start=2):
        items.append(row[path_col].strip())
        labels.append(row[label_col].strip() if label_col else "")
        rated = lexicon.rate(row[text_col]) if text_col and lexicon else {}
        rows.append(
            [
                _float(row[col], path, line, col)
                if col and row[col].strip()
                else rated.get(name, math.nan)
                for name, col in value_cols.items()
            ]
        )
    values = dict(
        zip(VALUE_NAMES, np.asarray(rows, dtype=np.float64).reshape(-1, 3).T, strict=True)
    )
    classes = sorted(set(labels) - {""}) if label_col else []
    probs, strata, categories = None, np.zeros(len(items), dtype=int), None
    if classes:
        categories = np.array([classes.index(lb) if lb else -1 for lb in labels])
        probs = np.where((categories >= 0)[:, None], np.eye(len(classes))[categories], np.nan)
        strata = categories + 1
    return EmotionData(
        path.stem, path.parent, items, classes, probs, values, strata, [], categories
    )


def load_dataset(spec: str, lexicon: Lexicon | None = None) -> EmotionData:
    """Load a dataset from a SPEC ``KIND`` or ``KIND:PATH``.

    Args:
        spec: ``emotion6[:DIR]``, ``oasis[:DIR]``, ``folder:DIR`` or ``csv:FILE``.
        lexicon: Lexicon for OASIS dominance and CSV text columns.

    Returns:
        The dataset.

    Raises:
        DataError: unknown kind, missing path, or a malformed dataset.
    """
    kind, _, location = spec.partition(":")
    kind = kind.strip().lower()
    loaders: dict[str, Callable[[], EmotionData]] = {
        "emotion6": lambda: load_emotion6(location or None),
        "oasis": lambda: load_oasis(location or None, lexicon),
        "folder": lambda: load_folder(location),
        "csv": lambda: load_csv(location, lexicon),
    }
    if kind not in loaders:
        raise DataError(f"unknown dataset kind {kind!r} in {spec!r}; use {', '.join(loaders)}")
    if kind in ("folder", "csv") and not location:
        raise DataError(f"dataset {spec!r} needs a path: {kind}:PATH")
    return loaders[kind]()


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to uint8 RGB ``(H, W, 3)``.

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except FileNotFoundError as err:
        raise DataError(f"image {path} not found") from err
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"image {path} cannot be decoded ({err})") from err


def check_images(
    data: EmotionData,
    strict: bool = False,
    progress: Progress | None = None,
) -> tuple[EmotionData, list[str]]:
    """Decode every image once; drop (or, with ``strict``, refuse) missing and corrupt ones.

    Args:
        data: The dataset.
        strict: Raise instead of skipping.
        progress: Reports stage ``"check"``, one unit per image.

    Returns:
        The dataset without bad rows, and one line per bad image (path and reason).

    Raises:
        DataError: with ``strict``, listing every bad image.
    """
    good, problems = [], []
    for i in range(len(data)):
        try:
            read_image(data.path(i))
            good.append(i)
        except DataError as err:
            problems.append(str(err))
        if progress:
            progress("check", 1, len(data), None)
    if problems and strict:
        raise DataError(
            f"{len(problems)} unreadable image(s) in {data.name}: " + "; ".join(problems)
        )
    return (data.subset(good) if problems else data), problems


def split_indices(
    data: EmotionData, seed: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
) -> dict[str, np.ndarray]:
    """Split rows into train / val / test, stratified by ``data.strata``, fixed by seed.

    The split depends only on the seed, the dataset name and its rows' strata order, so the
    same label file and seed always give the same split.

    Args:
        data: The dataset.
        seed: Split seed.
        fractions: Train, validation and test fractions (summing to 1).

    Returns:
        ``{"train", "val", "test"}`` -> sorted row indices.

    Raises:
        DataError: fractions that are negative or do not sum to 1.
    """
    if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"split fractions {fractions} must be >= 0 and sum to 1")
    rng = np.random.default_rng([seed, zlib.crc32(data.name.encode())])
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for stratum in np.unique(data.strata):
        rows = rng.permutation(np.flatnonzero(data.strata == stratum))
        n_test, n_val = round(len(rows) * fractions[2]), round(len(rows) * fractions[1])
        parts["test"] += rows[:n_test].tolist()
        parts["val"] += rows[n_test : n_test + n_val].tolist()
        parts["train"] += rows[n_test + n_val :].tolist()
    return {name: np.array(sorted(rows), dtype=int) for name, rows in parts.items()}
