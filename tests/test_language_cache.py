"""The uncompressed cache of py3langid's model gives the identifier py3langid builds itself,
is made again when it cannot be read, and is only a speed-up when it cannot be written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from py3langid import modelio
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from monitor.profile import language_cache

MODEL = MODEL_DIR / MODEL_FILE
TEXTS = ["the quick brown fox jumps over the lazy dog", "le renard brun saute par-dessus le chien",
         "der schnelle braune Fuchs springt", "быстрая коричневая лиса", "素早い茶色の狐",
         "1234", "", "a", "ceci n'est pas une pipe but this is", "el zorro marrón rápido"]


@pytest.fixture(scope="module")
def reference() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)


def identifier(arrays: tuple) -> LanguageIdentifier:
    ptc, pc, classes, nextmove, row, output = arrays
    return LanguageIdentifier(ptc, pc, classes, nextmove, output, norm_probs=False, tk_row=row)


def same_answers(a: LanguageIdentifier, b: LanguageIdentifier) -> None:
    for text in TEXTS:
        assert a.classify(text) == b.classify(text), text


def test_the_cached_model_classifies_as_py3langid_does(tmp_path: Path, reference,
                                                       monkeypatch) -> None:
    made = identifier(language_cache.load_model(MODEL, tmp_path))
    assert len(list(tmp_path.glob("langid-*.npz"))) == 1
    # The second load reads the cache: the compressed model is not opened again.
    monkeypatch.setattr(modelio, "load_model", lambda path: pytest.fail("decompressed again"))
    cached = identifier(language_cache.load_model(MODEL, tmp_path))
    same_answers(cached, reference)
    same_answers(made, reference)
    assert not list(tmp_path.glob("*.tmp")), "no temporary file is left"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bad shapes"])
def test_an_unreadable_cache_is_made_again(tmp_path: Path, reference, damage: str) -> None:
    language_cache.load_model(MODEL, tmp_path)
    (path,) = tmp_path.glob("langid-*.npz")
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":  # the same size, bytes flipped inside the largest array
        path.write_bytes(good[:1000] + bytes(b ^ 0xFF for b in good[1000:5000]) + good[5000:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        np.savez(path, **{**arrays, "pc": arrays["pc"][:-1]})
    same_answers(identifier(language_cache.load_model(MODEL, tmp_path)), reference)
    assert len(path.read_bytes()) == len(good), "the cache is written again, whole"
    same_answers(identifier(language_cache._read(path)), reference)


def test_a_cache_that_cannot_be_written_costs_only_time(tmp_path: Path, reference) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    same_answers(identifier(language_cache.load_model(MODEL, blocked / "cache")), reference)
    assert blocked.read_text() == "not a directory"


def test_a_new_model_file_gets_a_cache_of_its_own(tmp_path: Path) -> None:
    copy = tmp_path / "model.npz.xz"
    copy.write_bytes(MODEL.read_bytes())
    first = language_cache.cache_file(copy, tmp_path)
    os.utime(copy, ns=(1, 1))  # another file there now (another time)
    assert language_cache.cache_file(copy, tmp_path) != first
