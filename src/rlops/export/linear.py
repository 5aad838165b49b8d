"""ONNX heads of the linear policies, built node by node in float64: scores, UCB scores, posterior moments.

Input ``x`` is the encoded matrix ``(n, d)``. With ``phi = [x, 1]`` (the ridge models' intercept last):

- ``mean = phi @ theta.T``, one column per action (:class:`~rlops.policies.ridge.RidgeModel`'s disjoint layout);
- ``variance[:, k] = phi A_k^-1 phi^T``, as ``sum(reshape(phi @ [A_1^-1 ... A_K^-1], (n, K, D)) * phi, axis=2)``,
  floored at 0 as the model does;
- LinUCB's score ``mean + alpha * sqrt(variance)``: the UCB bonus is in the graph, so the export acts exactly as
  the policy, not only greedily on the mean. It costs the ``K`` inverse matrices (``K * D^2`` numbers).
- fixed linear scorers: ``x @ weights.T + bias``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rlops.edge.rules import MEAN, SCORES, VARIANCE

OPSET = 17
X = "x"


class _Builder:
    """Collects nodes and float64 constants of one graph."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.constants.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def phi(self) -> str:
        """``[x, 1]``: the encoded matrix with the intercept column appended."""
        shape = self.node("Shape", [X], "n_shape", start=0, end=1)
        ones_shape = self.node("Concat", [shape, self.constant("one_i64", np.array([1], dtype=np.int64))],
                               "ones_shape", axis=0)
        ones = self.node("ConstantOfShape", [ones_shape], "ones",
                         value=numpy_helper.from_array(np.array([1.0], dtype=np.float64)))
        return self.node("Concat", [X, ones], "phi", axis=1)

    def moments(self, theta: np.ndarray, a_inv: np.ndarray | None) -> tuple[str, str | None]:
        """``(mean, variance)`` output names; the variance only when ``a_inv`` is given."""
        phi = self.phi()
        mean = self.node("MatMul", [phi, self.constant("theta_t", theta.T)], "mean_raw")
        if a_inv is None:
            return mean, None
        k, dim = a_inv.shape[0], a_inv.shape[1]
        stacked = np.concatenate(list(a_inv), axis=1)  # (D, K*D): column block k is A_k^-1
        product = self.node("MatMul", [phi, self.constant("a_inv_stacked", stacked)], "phi_a_inv")
        blocks = self.node("Reshape", [product, self.constant("blocks_shape", np.array([-1, k, dim], np.int64))],
                           "phi_a_inv_blocks")
        phi_3d = self.node("Unsqueeze", [phi, self.constant("axis_1", np.array([1], np.int64))], "phi_3d")
        weighted = self.node("Mul", [blocks, phi_3d], "quadratic_terms")
        quadratic = self.node("ReduceSum", [weighted, self.constant("axis_2", np.array([2], np.int64))],
                              "quadratic", keepdims=0)
        variance = self.node("Max", [quadratic, self.constant("zero", np.array(0.0))], "variance_raw")
        return mean, variance

    def model(self, outputs: dict[str, str], n_actions: int) -> onnx.ModelProto:
        """The model with each ``name -> internal value`` as a ``(n, n_actions)`` float64 output."""
        for name, value in outputs.items():
            self.node("Identity", [value], name)
        x = helper.make_tensor_value_info(X, TensorProto.DOUBLE, ["n", self.width])
        graph_outputs = [helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["n", n_actions]) for name in outputs]
        graph = helper.make_graph(self.nodes, "rlops_linear", [x], graph_outputs, initializer=self.constants)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rlops")


def ucb_head(width: int, theta: np.ndarray, a_inv: np.ndarray, alpha: float) -> onnx.ModelProto:
    """Scores ``mean + alpha * sqrt(variance)`` (LinUCB); with ``alpha == 0`` the mean alone, without ``A^-1``."""
    b = _Builder(width)
    mean, variance = b.moments(theta, a_inv if alpha > 0 else None)
    if variance is None:
        return b.model({SCORES: mean}, theta.shape[0])
    bonus = b.node("Mul", [b.node("Sqrt", [variance], "std_raw"), b.constant("alpha", np.array(float(alpha)))],
                   "bonus")
    return b.model({SCORES: b.node("Add", [mean, bonus], "ucb")}, theta.shape[0])


def moments_head(width: int, theta: np.ndarray, a_inv: np.ndarray) -> onnx.ModelProto:
    """Outputs ``mean`` and ``variance`` (linear Thompson sampling draws from them)."""
    b = _Builder(width)
    mean, variance = b.moments(theta, a_inv)
    assert variance is not None  # a_inv was given
    return b.model({MEAN: mean, VARIANCE: variance}, theta.shape[0])


def mean_head(width: int, theta: np.ndarray) -> onnx.ModelProto:
    """Scores ``[x, 1] @ theta.T`` (the ridge scorer)."""
    b = _Builder(width)
    mean, _ = b.moments(theta, None)
    return b.model({SCORES: mean}, theta.shape[0])


def affine_head(width: int, weights: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """Scores ``x @ weights.T + bias`` (the fixed linear scorer; zero weights give the uniform policy's scores)."""
    b = _Builder(width)
    product = b.node("MatMul", [X, b.constant("weights_t", np.asarray(weights, np.float64).T)], "xw")
    scores = b.node("Add", [product, b.constant("bias", np.asarray(bias, np.float64))], "affine")
    return b.model({SCORES: scores}, weights.shape[0])
