"""What travels to the GPU machine: the wheels it lacks and the data, packed small.

    python benchmarks/gpu/bundle.py select-wheels DOWNLOADED_DIR WHEEL_DIR
    python benchmarks/gpu/bundle.py pack-data DATA_ROOT OUT_DIR [--side 192] [--quality 85]
    python benchmarks/gpu/bundle.py check-requirements WHEEL_DIR

``select-wheels`` copies the wheels of a resolved ``pip download`` whose distributions are
not in ``preinstalled.txt`` (the GPU machine's image), refusing two versions of one
distribution. ``pack-data`` re-encodes Emotion6 and OASIS images to at most ``--side`` px
(JPEG), copies their label files byte for byte and keeps the four Warriner columns the
lexicon loader reads. ``check-requirements`` (run on the GPU machine after installing the
wheels) checks that every requirement of every carried wheel is met by what is installed,
so a missing dependency is named before any test fails on an import.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import sys
import zipfile
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Columns of ``warriner2013.csv`` that :func:`evoemotion.emotion.lexicon.load_warriner` reads.
LEXICON_COLUMNS = ("Word", "V.Mean.Sum", "A.Mean.Sum", "D.Mean.Sum")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def preinstalled() -> set[str]:
    """Canonical names listed in ``preinstalled.txt`` (comments and blanks skipped)."""
    lines = (HERE / "preinstalled.txt").read_text().splitlines()
    return {canonical(line) for line in lines if line.strip() and not line.startswith("#")}


def wheel_name(path: Path) -> str:
    """Canonical distribution name of a wheel file."""
    return canonical(path.name.split("-")[0])


def select_wheels(downloaded: Path, out: Path) -> list[Path]:
    """Copy the wheels the GPU machine lacks from ``downloaded`` into ``out`` (emptied first).

    Raises:
        SystemExit: a file that is not a wheel, or two versions of one distribution.
    """
    present = preinstalled()
    chosen: dict[str, Path] = {}
    for path in sorted(downloaded.iterdir()):
        if path.suffix != ".whl":
            sys.exit(f"{path}: not a wheel (pip downloaded a source archive; no binary found)")
        name = wheel_name(path)
        if name in present:
            continue
        if name in chosen:
            sys.exit(f"two versions of {name}: {chosen[name].name} and {path.name}")
        chosen[name] = path
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for path in chosen.values():
        shutil.copy2(path, out / path.name)
    return [out / p.name for p in chosen.values()]


def _reencode(source: Path, target: Path, side: int, quality: int) -> None:
    from PIL import Image

    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side), Image.LANCZOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, "JPEG", quality=quality)


def pack_data(root: Path, out: Path, side: int, quality: int) -> int:
    """Pack Emotion6, OASIS and the lexicon columns from ``root`` into ``out``.

    Returns:
        The number of images written.

    Raises:
        SystemExit: a dataset folder or label file is missing.
    """
    labels = [root / "emotion6" / "ground_truth.txt", root / "oasis" / "OASIS.csv"]
    for path in labels:
        if not path.is_file():
            sys.exit(f"{path} not found: point DATA (or EVOEMOTION_DATA) at the data folder")
    if out.exists():
        shutil.rmtree(out)
    images = 0
    for dataset in ("emotion6", "oasis"):
        (out / dataset).mkdir(parents=True)
        for source in sorted((root / dataset / "images").rglob("*")):
            if source.is_file():
                relative = source.relative_to(root / dataset)
                _reencode(source, (out / dataset / relative).with_suffix(".jpg"), side, quality)
                images += 1
    for path in labels:
        shutil.copy2(path, out / path.parent.name / path.name)
    lexicon = root / "lexicons" / "warriner2013.csv"
    if lexicon.is_file():
        (out / "lexicons").mkdir()
        with open(lexicon, newline="") as src, open(out / lexicon.relative_to(root), "w",
                                                      newline="") as dst:
            writer = csv.writer(dst)
            writer.writerow(LEXICON_COLUMNS)
            for row in csv.DictReader(src):
                writer.writerow([row[column] for column in LEXICON_COLUMNS])
    return images


def check_requirements(wheels: Path) -> list[str]:
    """Requirements of the carried wheels that the running Python does not meet.

    Each wheel's ``Requires-Dist`` lines are evaluated for this interpreter (extras the
    project asks for: ``ribs[visualize]``, ``dask[distributed]``) and checked against the
    installed distributions.

    Returns:
        One line per unmet requirement (empty when all are met).
    """
    from packaging.requirements import Requirement

    extras = {"ribs": {"visualize"}, "dask": {"distributed"}}
    problems = []
    for path in sorted(wheels.glob("*.whl")):
        name = wheel_name(path)
        with zipfile.ZipFile(path) as archive:
            meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            lines = archive.read(meta).decode().splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.split(":", 1)[1].strip())
            wanted = [{"extra": e} for e in extras.get(name, set())] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(w) for w in wanted):
                continue
            try:
                version = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{path.name}: needs {requirement}, not installed")
                continue
            if not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"{path.name}: needs {requirement}, found {version}")
    return problems


def main() -> None:
    """Parse the command line and run one sub-command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    select = sub.add_parser("select-wheels", help="keep the wheels the GPU machine lacks")
    select.add_argument("downloaded", type=Path)
    select.add_argument("out", type=Path)
    pack = sub.add_parser("pack-data", help="re-encode the datasets small")
    pack.add_argument("root", type=Path)
    pack.add_argument("out", type=Path)
    pack.add_argument("--side", type=int, default=192, help="longest side in px")
    pack.add_argument("--quality", type=int, default=85, help="JPEG quality")
    check = sub.add_parser("check-requirements", help="are the wheels' needs installed?")
    check.add_argument("wheels", type=Path)
    args = parser.parse_args()
    if args.command == "select-wheels":
        for path in select_wheels(args.downloaded, args.out):
            print(f"  {path.name}")
    elif args.command == "pack-data":
        count = pack_data(args.root, args.out, args.side, args.quality)
        print(f"  {count} images at most {args.side} px, JPEG quality {args.quality}")
    else:
        problems = check_requirements(args.wheels)
        print("\n".join(problems) or "every requirement of the carried wheels is installed")
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
