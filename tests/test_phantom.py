"""Synthetic ultrasound phantoms: deterministic, labelled by construction, reused once rendered."""

from __future__ import annotations

import numpy as np
import pytest

from data_zh.builders.phantom import FINDINGS, render_phantom, write_phantom_set
from ultra.train import DataSource
from ultra.train.data import load_source


def _mass_darkness(finding: str, seeds: range) -> float:
    """Mean of the darkest 2% of pixels in the middle band, where masses are drawn."""
    values = []
    for seed in seeds:
        pixels = render_phantom(finding, np.random.default_rng([7, seed]), 128).pixels.astype(float)
        band = pixels[38:84, 32:96]
        values.append(np.sort(band, axis=None)[: band.size // 50].mean())
    return float(np.mean(values))


def test_render_is_deterministic_and_sized():
    first = render_phantom("irregular", np.random.default_rng([0, 3]), 96)
    again = render_phantom("irregular", np.random.default_rng([0, 3]), 96)
    other = render_phantom("irregular", np.random.default_rng([0, 4]), 96)
    assert first.pixels.shape == (96, 96) and first.pixels.dtype == np.uint8
    assert np.array_equal(first.pixels, again.pixels)
    assert not np.array_equal(first.pixels, other.pixels)
    assert first.finding == "irregular"


def test_masses_are_darker_than_tissue_without_a_finding():
    # A hypoechoic mass is what the label means: the darkest pixels of the middle band are darker
    # with a mass than in images with no finding (fat lobules there are only mildly hypoechoic).
    none, oval, irregular = (_mass_darkness(finding, range(12)) for finding in FINDINGS)
    assert oval < none - 5, f"oval {oval:.1f} vs none {none:.1f}"
    assert irregular < none - 5, f"irregular {irregular:.1f} vs none {none:.1f}"


def test_render_refuses_unknown_finding_and_tiny_size():
    with pytest.raises(ValueError, match="unknown phantom finding 'cyst'"):
        render_phantom("cyst", np.random.default_rng(0))
    with pytest.raises(ValueError, match="too small"):
        render_phantom("none", np.random.default_rng(0), 16)


def test_phantom_set_balances_findings_and_is_reused_only_when_complete(tmp_path):
    root = tmp_path / "set"
    rows = write_phantom_set(root, 7, size=64, seed=1)
    assert [finding for _, finding in rows] == [FINDINGS[i % 3] for i in range(7)]
    assert all((root / path).is_file() for path, _ in rows)
    first = root / rows[0][0]
    rendered = first.read_bytes()
    first.write_bytes(b"marker")  # a complete set with the same settings is reused as it is
    assert write_phantom_set(root, 7, size=64, seed=1) == rows and first.read_bytes() == b"marker"
    first.unlink()  # an image missing (an interrupted render): the set is rendered again
    assert write_phantom_set(root, 7, size=64, seed=1) == rows and first.read_bytes() == rendered
    other = write_phantom_set(root, 7, size=64, seed=2)  # other settings: rendered again
    assert other == rows and first.read_bytes() != rendered
    assert '"seed": 2' in (root / "phantoms.json").read_text(encoding="utf-8")


def test_phantom_source_gives_labelled_single_image_records(tmp_path):
    source = DataSource(kind="phantom", path=str(tmp_path / "ph"), phantom={"count": 6, "size": 64})
    records = load_source(source)
    assert len(records) == 6
    assert [record.labels.classes for record in records[:3]] == [[finding] for finding in FINDINGS]
    assert all(record.media.count == 1 and "Apache" in record.licence for record in records)
    with pytest.raises(ValueError, match="phantom settings"):
        DataSource(kind="phantom", path=str(tmp_path / "ph"))
    with pytest.raises(ValueError, match="phantom settings"):
        DataSource(kind="busi", path=str(tmp_path), phantom={"count": 3})
