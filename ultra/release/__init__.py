"""The embedded release: train ``ultra-tiny-zh`` and its screening student, score val once, gate
what may ship (licences, size), and write the model card and the bundled examples.

``ultra release`` drives :func:`release`; ``ultra release examples`` redraws the examples alone.
"""

from ultra.release.examples import draw_examples, write_examples
from ultra.release.model_card import CardFacts, ShippedFile, render_model_card
from ultra.release.release import (
    MODEL_NAME,
    STUDENT_NAME,
    ReleaseError,
    ReleasePaths,
    release,
    release_paths,
)
from ultra.release.shippable import MAX_RELEASE_MB, LicenceError, check_shippable, read_training_data

__all__ = [
    "MAX_RELEASE_MB",
    "MODEL_NAME",
    "STUDENT_NAME",
    "CardFacts",
    "LicenceError",
    "ReleaseError",
    "ReleasePaths",
    "ShippedFile",
    "check_shippable",
    "draw_examples",
    "read_training_data",
    "release",
    "release_paths",
    "render_model_card",
    "write_examples",
]
