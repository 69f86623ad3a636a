"""Self-training reads any registry source plus unlabelled folders; its short names each mean one
registry entry, and an unknown kind is refused when the config loads, listing the known ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ultra.selftrain.config import ImageSource
from ultra.selftrain.sources import IMAGE_SOURCES, SELFTRAIN_NAMES, image_records


@pytest.mark.parametrize("name", sorted(SELFTRAIN_NAMES))
def test_each_short_name_means_one_image_source(name):
    assert SELFTRAIN_NAMES[name].source in IMAGE_SOURCES
    assert ImageSource(kind=name, path="x").kind == name


def test_an_unknown_kind_is_refused_at_load_with_the_known_ones():
    with pytest.raises(ValidationError, match="unknown image source 'pacs'; known: .*busi_vqa.*folder"):
        ImageSource(kind="pacs", path="x")


def test_a_registry_source_gives_one_record_per_image(shared_data):
    images = image_records(ImageSource(kind="busi_vqa", path=str(shared_data / "busi"), split="val", max_images=5))
    assert len(images) == 5
    assert len({tuple(record.media.images) for record in images}) == 5
