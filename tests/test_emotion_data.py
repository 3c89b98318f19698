"""Dataset adapters, lexicon, image checks and splits — on tiny files and the real data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from evoemotion.emotion.datasets import (
    check_images,
    load_csv,
    load_dataset,
    load_emotion6,
    load_folder,
    load_oasis,
    split_indices,
)
from evoemotion.emotion.lexicon import load_warriner
from evoemotion.errors import DataError

LEXICON_ROWS = [
    ("acorn", 6.0, 2.0, 5.0),
    ("child", 7.0, 4.0, 4.0),
    ("swim", 6.5, 5.0, 6.0),
    ("paper", 5.0, 2.0, 6.0),
    ("clip", 5.0, 3.0, 5.0),
    ("war", 1.5, 7.0, 3.0),
    ("happy", 8.5, 6.0, 7.0),
]


@pytest.fixture
def lexicon(tmp_path):
    path = tmp_path / "warriner.csv"
    lines = [",Word,V.Mean.Sum,V.SD.Sum,A.Mean.Sum,D.Mean.Sum"]
    lines += [f"{i},{w},{v},0.5,{a},{d}" for i, (w, v, a, d) in enumerate(LEXICON_ROWS, 1)]
    path.write_text("\n".join(lines) + "\n")
    return load_warriner(path)


def _png(path, colour=(200, 30, 30), size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_lemmatiser_handles_plurals_participles_irregulars_and_compounds(lexicon):
    assert lexicon.lemmatise("Acorns") == "acorn"
    assert lexicon.lemmatise("children") == "child"
    assert lexicon.lemmatise("swimming") == "swim"
    assert lexicon.lemmatise("happier") == "happy"
    assert lexicon.lemmatise("zebra") is None
    assert lexicon.lemmas("paperclips") == ["paper", "clip"]
    rated = lexicon.rate("Acorns 2 and war")  # "and" is not in the lexicon
    assert rated["dominance"] == pytest.approx((5.0 + 3.0) / 2)
    assert all(math.isnan(v) for v in lexicon.rate("Zebra 1").values())


def test_lexicon_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv not found"):
        load_warriner(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("Word,V.Mean.Sum\nx,1\n")
    with pytest.raises(DataError, match="lacks column"):
        load_warriner(bad)


def test_oasis_adapter_copes_with_cr_endings_and_padded_themes(tmp_path, lexicon):
    rows = [
        ",Theme,Category,Source,Valence_mean,Valence_SD,Valence_N,Arousal_mean,Arousal_SD,Arousal_N",
        "I1,Acorns 1,Object,Pixabay,1,1,100,7,1,100",
        "I2,War 2 ,Scenery,Pixabay,4,1,100,2.5,1,100",
        "I3,Zebra 1,Animal,Pixabay,7,1,100,4,1,100",
    ]
    root = tmp_path / "oasis"
    root.mkdir()
    (root / "OASIS.csv").write_bytes("\r".join(rows).encode())
    data = load_oasis(root, lexicon)
    assert data.items == ["Acorns 1.jpg", "War 2.jpg", "Zebra 1.jpg"]
    assert np.allclose(data.values["valence"], [1.0, 5.0, 9.0])  # 1-7 rescaled to 1-9
    assert np.allclose(data.values["arousal"], [9.0, 1 + 1.5 * 8 / 6, 5.0])
    assert data.values["dominance"][:2].tolist() == [5.0, 3.0]
    assert math.isnan(data.values["dominance"][2])
    assert data.class_names == [] and data.targets() == ["valence", "arousal", "dominance"]
    assert any("1-7 to 1-9" in note for note in data.notes)


def test_emotion6_adapter_parses_distribution_and_va(tmp_path):
    root = tmp_path / "e6"
    root.mkdir()
    header = "[image_filename]\t[valence]\t[arousal]\t" + "\t".join(f"[p{i}]" for i in range(7))
    (root / "ground_truth.txt").write_text(
        header
        + "\njoy/1.jpg\t7.5\t5.0\t0\t0\t0\t0.8\t0\t0\t0.2\nfear/2.jpg\t2\t6\t0\t0\t1\t0\t0\t0\t0\n"
    )
    data = load_emotion6(root)
    assert data.items == ["joy/1.jpg", "fear/2.jpg"]
    assert data.class_names[3] == "joy" and data.class_names[-1] == "neutral"
    assert data.strata.tolist() == [3, 2]
    assert data.values["valence"].tolist() == [7.5, 2.0]
    assert np.isnan(data.values["dominance"]).all()
    (root / "ground_truth.txt").write_text(header + "\njoy/1.jpg\t7.5\tlots\t0\t0\t0\t1\t0\t0\t0\n")
    with pytest.raises(DataError, match="line 2: column 'arousal'"):
        load_emotion6(root)


def test_folder_and_csv_adapters(tmp_path, lexicon):
    for i in range(2):
        _png(tmp_path / "art" / "amusement" / f"{i}.png")
        _png(tmp_path / "art" / "awe" / "nested" / f"{i}.jpg", (0, 0, 200))
    folder = load_folder(tmp_path / "art")
    assert folder.class_names == ["amusement", "awe"]
    assert folder.items[2] == "awe/nested/0.jpg"
    assert folder.probs.tolist()[3] == [0.0, 1.0]
    csv_path = tmp_path / "art" / "labels.csv"
    csv_path.write_text("path;label;v;text\namusement/0.png;fun;6.5;\nawe/nested/0.jpg;wow;;war\n")
    data = load_dataset(f"csv:{csv_path}", lexicon)
    assert data.class_names == ["fun", "wow"] and data.path(1) == tmp_path / "art/awe/nested/0.jpg"
    assert data.values["valence"].tolist() == [6.5, 1.5]  # missing value filled from the text
    assert data.values["dominance"][1] == 3.0
    (tmp_path / "nopath.csv").write_text("label\nx\n")
    with pytest.raises(DataError, match="no path column"):
        load_csv(tmp_path / "nopath.csv")
    with pytest.raises(DataError, match="unknown dataset kind 'flickr'"):
        load_dataset("flickr:/x")


def test_check_images_reports_and_skips_or_stops(tmp_path):
    _png(tmp_path / "d" / "a" / "good.png")
    (tmp_path / "d" / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    data = load_folder(tmp_path / "d")
    data.items.append("a/missing.png")
    data.strata = np.append(data.strata, 0)
    data.probs = np.vstack([data.probs, [[1.0]]])
    data.values = {k: np.append(v, np.nan) for k, v in data.values.items()}
    kept, problems = check_images(data)
    assert kept.items == ["a/good.png"]
    assert len(problems) == 2
    assert "broken.png cannot be decoded" in problems[0] and "missing.png not found" in problems[1]
    with pytest.raises(DataError, match="2 unreadable image"):
        check_images(data, strict=True)


def test_split_is_seeded_disjoint_complete_and_stratified(tmp_path):
    for i in range(40):
        _png(tmp_path / "s" / ("a" if i < 30 else "b") / f"{i}.png")
    data = load_folder(tmp_path / "s")
    split = split_indices(data, seed=7, fractions=(0.6, 0.2, 0.2))
    joined = np.concatenate(list(split.values()))
    assert sorted(joined.tolist()) == list(range(40))
    assert (data.strata[split["test"]] == 1).sum() == 2  # 20% of the 10 "b" rows
    again = split_indices(data, seed=7, fractions=(0.6, 0.2, 0.2))
    assert all(np.array_equal(split[k], again[k]) for k in split)
    other = split_indices(data, seed=8, fractions=(0.6, 0.2, 0.2))
    assert not np.array_equal(split["test"], other["test"])
    with pytest.raises(DataError, match="sum to 1"):
        split_indices(data, 0, (0.5, 0.5, 0.5))


def test_real_emotion6_oasis_and_lexicon(shared_data):
    e6 = load_dataset("emotion6")
    assert len(e6) == 1980 and len(e6.class_names) == 7
    assert np.allclose(e6.probs.sum(axis=1), 1.0)
    assert np.bincount(e6.strata).tolist() == [31, 245, 329, 638, 308, 104, 325]
    assert all(e6.path(i).is_file() for i in range(0, 1980, 330))
    lexicon = load_warriner(shared_data / "lexicons" / "warriner2013.csv")
    assert len(lexicon.norms) > 13_000 and lexicon.lemmatise("acorns") == "acorn"
    oasis = load_dataset("oasis", lexicon)
    assert len(oasis) == 900
    assert all(oasis.path(i).is_file() for i in range(len(oasis)))  # "War 2 " -> War 2.jpg
    assert np.nanmin(oasis.values["valence"]) >= 1.0 and np.nanmax(oasis.values["valence"]) <= 9.0
    assert np.isfinite(oasis.values["dominance"]).sum() > 850
