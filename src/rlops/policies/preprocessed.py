"""A policy that sees preprocessed features: the wrapper :func:`with_preprocessing` makes and ``load_policy`` rebuilds.

The wrapped policy was trained on ``preprocessor.transform(schema.encode(contexts))``; the wrapper applies the same
transform to every batch before the policy acts (and before it learns, for online learners), so a deployment, a
training run and an export all feed it the same matrix. It saves as its inner policy's folder with the
preprocessor in the manifest, so a policy folder stays one kind with one set of files.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rlops.errors import ValidationError
from rlops.policies.base import ActResult, BasePolicy, LearningBatch, PolicyInput
from rlops.policies.preprocessing import Preprocessor


class Preprocessed(BasePolicy):
    """``inner`` acting on preprocessed features. Use :func:`with_preprocessing` to build one."""

    def __init__(self, inner: BasePolicy, preprocessor: Preprocessor) -> None:
        super().__init__(inner.schema)
        names = [c.name for c in preprocessor.columns]
        if names != list(inner.schema.column_names):
            raise ValidationError("preprocessing", f"fitted for columns {names[:4]}... but the schema's are "
                                                   f"{list(inner.schema.column_names)[:4]}... (another schema, or "
                                                   "another column order)")
        self.inner, self.preprocessor = inner, preprocessor

    @property
    def kind(self) -> str:  # type: ignore[override]  # saved as the inner policy's kind
        return self.inner.kind

    def features(self, batch: PolicyInput) -> PolicyInput:
        """The batch as the inner policy sees it."""
        return replace(batch, x=self.preprocessor.transform(batch.x))

    def act(self, batch: PolicyInput, rng: np.random.Generator) -> ActResult:
        return self.inner.act(self.features(batch), rng)

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def state(self) -> dict[str, np.ndarray]:
        return self.inner.state()

    def save_files(self, folder: Path) -> None:
        self.inner.save_files(folder)


class PreprocessedLearner(Preprocessed):
    """The same, for an online learner: updates see the same transformed features."""

    def update(self, batch: LearningBatch) -> None:
        self.inner.update(replace(batch, inputs=self.features(batch.inputs)))  # type: ignore[attr-defined]


def with_preprocessing(inner: BasePolicy, preprocessor: Preprocessor | None) -> BasePolicy:
    """``inner`` wrapped to see ``preprocessor``'s features (``inner`` itself when there is none)."""
    if preprocessor is None:
        return inner
    cls = PreprocessedLearner if callable(getattr(inner, "update", None)) else Preprocessed
    return cls(inner, preprocessor)


def unwrap(policy: BasePolicy) -> tuple[BasePolicy, Preprocessor | None]:
    """The policy that holds the files, and the preprocessor in front of it (if any)."""
    if isinstance(policy, Preprocessed):
        return policy.inner, policy.preprocessor
    return policy, None
