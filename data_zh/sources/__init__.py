"""One registry of data sources: name -> records, for training, evaluation, self-training and ``ultra data``.

``load_records(name, root, split=...)`` is the front door; ``SOURCES`` lists every entry (a new
dataset is one more ``DataSourceSpec``); ``TRAINING_NAMES`` and ``EVALUATION_NAMES`` keep the
names shipped configs and commands use.
"""

from data_zh.sources.entries import SOURCES, of_split
from data_zh.sources.loading import load_records, resolve_source
from data_zh.sources.names import EVALUATION_NAMES, TRAINING_NAMES
from data_zh.sources.spec import DataSourceSpec, Loader, SourceRef

__all__ = [
    "EVALUATION_NAMES",
    "SOURCES",
    "TRAINING_NAMES",
    "DataSourceSpec",
    "Loader",
    "SourceRef",
    "load_records",
    "of_split",
    "resolve_source",
]
