"""Cross-validation folds inside the BUSI train split: near-duplicates together, every image once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from data_zh.splits import load_split, load_split_payload
from data_zh.splitting import check_disjoint, cv_folds


@pytest.mark.parametrize("k", [2, 5])
def test_folds_cover_the_train_split_exactly_once(k):
    folds = cv_folds(k, seed=0)
    assert len(folds) == k
    check_disjoint({f"fold{i}": keys for i, keys in enumerate(folds)})
    assert sorted(key for fold in folds for key in fold) == sorted(load_split("busi")["train"])
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= 3, sizes


def test_no_near_duplicate_group_is_in_two_folds():
    train = set(load_split("busi")["train"])
    groups = [set(group) & train for group in load_split_payload("busi")["groups"]]
    groups = [group for group in groups if len(group) > 1]
    assert groups, "the train split holds near-duplicate groups; the check below must see some"
    fold_of = {key: index for index, fold in enumerate(cv_folds(5, seed=0)) for key in fold}
    for group in groups:
        assert len({fold_of[key] for key in group}) == 1, sorted(group)


def test_folds_are_stratified_seeded_and_take_labels():
    folds = cv_folds(5, seed=0)
    assert folds == cv_folds(5, seed=0) and folds != cv_folds(5, seed=1)
    totals = Counter(Path(key).parent.name for fold in folds for key in fold)
    for fold in folds:
        counts = Counter(Path(key).parent.name for key in fold)
        for label, total in totals.items():
            assert abs(counts[label] - total / 5) <= 2, (label, counts)
    labels = {key: "x" for key in load_split("busi")["train"]}
    assert sorted(map(len, cv_folds(4, seed=0, labels=labels))) == [90, 90, 90, 91]


def test_bad_fold_requests_say_what_is_wrong():
    with pytest.raises(ValueError, match="k >= 2"):
        cv_folds(1, seed=0)
    with pytest.raises(ValueError, match="unknown busi split 'dev'"):
        cv_folds(5, seed=0, split="dev")
