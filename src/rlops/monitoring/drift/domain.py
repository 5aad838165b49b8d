"""Multivariate drift: the cross-validated AUC of a classifier trained to tell live rows from reference rows.

If the live window comes from the reference's distribution no classifier can separate the two samples and its
out-of-fold ROC AUC stays near 0.5; a shift in any feature, or in how features go together, lets it do better.
Both samples are the same size (the smaller of the two), so the AUC does not depend on their ratio.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rlops.errors import ValidationError
from rlops.monitoring.drift.config import DomainClassifier


def domain_auc(reference: npt.NDArray[np.float64], live: npt.NDArray[np.float64],
               classifier: DomainClassifier = DomainClassifier.LOGISTIC, folds: int = 5, seed: int = 0) -> float:
    """Out-of-fold ROC AUC of ``classifier`` separating ``live`` rows (label 1) from ``reference`` rows (label 0).

    Args:
        reference: reference rows, shape ``(n, d)``.
        live: live rows, shape ``(m, d)``; the larger sample is subsampled (seeded) to the smaller one's size.
        classifier: ``LOGISTIC`` (on columns standardised by the reference and their squares, so it sees shifts in
            mean and in spread) or ``GRADIENT_BOOSTING``.
        folds: stratified cross-validation folds.
        seed: seed of the subsample, the folds and the classifier.

    Raises:
        ValidationError: mismatched columns, or fewer than ``folds`` rows in a sample.
    """
    # scikit-learn is imported here, not with the package: it takes a second or two to import, and processes that
    # only run the streaming detectors (the service) should not pay for it.
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    if reference.ndim != 2 or live.ndim != 2 or reference.shape[1] != live.shape[1]:
        raise ValidationError("live", f"rows of shape {live.shape[1:]} do not match the reference's "
                                      f"{reference.shape[1:]}")
    rng = np.random.default_rng(seed)
    size = min(reference.shape[0], live.shape[0])
    if size < folds:
        raise ValidationError("live", f"the domain classifier needs at least {folds} rows per sample, got {size}")
    ref = reference[np.sort(rng.permutation(reference.shape[0])[:size])]
    new = live[np.sort(rng.permutation(live.shape[0])[:size])]
    x = np.concatenate((ref, new))
    y = np.concatenate((np.zeros(size), np.ones(size)))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if classifier is DomainClassifier.GRADIENT_BOOSTING:
        model = HistGradientBoostingClassifier(max_iter=50, random_state=seed)
    else:
        mean, std = ref.mean(axis=0), ref.std(axis=0)
        z = (x - mean) / np.where(std > 0, std, 1.0)
        x = np.concatenate((z, z * z), axis=1)
        model = LogisticRegression(max_iter=500)
    # One BLAS thread: on a few thousand rows, threads cost more in hand-offs than they save (5x slower measured on
    # a busy 2-CPU machine).
    with threadpool_limits(limits=1):
        scores = cross_val_predict(model, x, y, cv=split, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))
