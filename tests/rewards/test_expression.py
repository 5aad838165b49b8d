"""The safe reward expression language: known values, a scalar reference, and refusal of everything else."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlops.errors import ConfigError, ValidationError
from rlops.rewards.expression import MAX_DEPTH, MAX_LENGTH, Expression, ExpressionError, check_name

NAMES = {"a", "b", "c", "flag", "s"}

# four rows; every known-value test below is checked against numbers computed by hand from these
ENV = {
    "a": np.array([1.0, -2.0, 0.0, 10.0]),
    "b": np.array([2.0, 4.0, 3.0, 0.5]),
    "c": np.array([0.0, 1.0, -1.0, 2.0]),
    "flag": np.array([1.0, 0.0, 1.0, 0.0]),
    "s": np.array(["purchased", "viewed", "purchased", "returned"], dtype=object),
}


def run(text: str, env: dict[str, np.ndarray] | None = None) -> list[float]:
    env = ENV if env is None else env
    n = len(next(iter(env.values())))
    out = Expression.parse(text, NAMES).evaluate(env, n)
    assert out.dtype == np.float64
    assert out.shape == (n,)
    return out.tolist()


# ---- known values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b", [3.0, 2.0, 3.0, 10.5]),
        ("a - b", [-1.0, -6.0, -3.0, 9.5]),
        ("a * b", [2.0, -8.0, 0.0, 5.0]),
        ("a / b", [0.5, -0.5, 0.0, 20.0]),
        ("a // b", [0.0, -1.0, 0.0, 20.0]),
        ("a % b", [1.0, 2.0, 0.0, 0.0]),
        ("b ** 2", [4.0, 16.0, 9.0, 0.25]),
        ("-a", [-1.0, 2.0, -0.0, -10.0]),
        ("+a", [1.0, -2.0, 0.0, 10.0]),
        ("7", [7.0, 7.0, 7.0, 7.0]),
        ("2.5", [2.5, 2.5, 2.5, 2.5]),
        ("True + False", [1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_arithmetic(text: str, expected: list[float]) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b * c", [1.0, 2.0, -3.0, 11.0]),  # * binds tighter than +
        ("(a + b) * c", [0.0, 2.0, -3.0, 21.0]),
        ("-b ** 2", [-4.0, -16.0, -9.0, -0.25]),  # ** binds tighter than unary minus
        ("2 ** 3 ** 2", [512.0] * 4),  # ** is right-associative
        ("a - b - c", [-1.0, -7.0, -2.0, 7.5]),  # - is left-associative
        ("a / b * 2", [1.0, -1.0, 0.0, 40.0]),
        ("a + b > 2.5", [1.0, 0.0, 1.0, 1.0]),  # arithmetic before comparison
        ("not a + 2 == 2", [1.0, 1.0, 0.0, 1.0]),  # not binds looser than ==: not ((a + 2) == 2)
        ("flag or c and a", [1.0, 1.0, 1.0, 1.0]),  # flag or (c and a); (flag or c) and a is [1, 1, 0, 1]
    ],
)
def test_precedence(text: str, expected: list[float]) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 if flag else 0", [5.0, 0.0, 5.0, 0.0]),
        ("a if c else b", [2.0, -2.0, 0.0, 10.0]),
        ("1 if a > 0 else (2 if a < 0 else 3)", [1.0, 2.0, 3.0, 1.0]),
        ("a + (5 if flag else -5)", [6.0, -7.0, 5.0, 5.0]),
        # both branches are computed, but the untaken one's division by zero does not leak into the result
        ("a / c if c != 0 else 0", [0.0, -2.0, -0.0, 5.0]),
    ],
)
def test_conditionals(text: str, expected: list[float]) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("min(a, b)", [1.0, -2.0, 0.0, 0.5]),
        ("max(a, b)", [2.0, 4.0, 3.0, 10.0]),
        ("min(a, b, c)", [0.0, -2.0, -1.0, 0.5]),
        ("max(a, b, c, 3)", [3.0, 4.0, 3.0, 10.0]),
        ("abs(a)", [1.0, 2.0, 0.0, 10.0]),
        ("clip(a, 0, 5)", [1.0, 0.0, 0.0, 5.0]),
        ("clip(a, c, b)", [1.0, 1.0, 0.0, 0.5]),
        ("clip(a, 5, 0)", [0.0, 0.0, 0.0, 0.0]),  # lo > hi gives hi, as min(max(x, lo), hi)
        ("sqrt(b * 4)", [math.sqrt(8.0), 4.0, math.sqrt(12.0), math.sqrt(2.0)]),
        ("log(b)", [math.log(2.0), math.log(4.0), math.log(3.0), math.log(0.5)]),
        ("exp(c)", [1.0, math.e, math.exp(-1.0), math.exp(2.0)]),
        ("clip(a - 0.1 * b, -1, 5) + (5 if flag else 0)", [5.8, -1.0, 4.7, 5.0]),
    ],
)
def test_functions(text: str, expected: list[float]) -> None:
    assert run(text) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a < b", [1.0, 1.0, 1.0, 0.0]),
        ("a <= 0", [0.0, 1.0, 1.0, 0.0]),
        ("a > c", [1.0, 0.0, 1.0, 1.0]),
        ("a >= 10", [0.0, 0.0, 0.0, 1.0]),
        ("a == 0", [0.0, 0.0, 1.0, 0.0]),
        ("a != 0", [1.0, 1.0, 0.0, 1.0]),
        ("c < a < b", [1.0, 0.0, 1.0, 0.0]),  # chained: c < a and a < b
        ("0 <= c <= 1 < b", [1.0, 1.0, 0.0, 0.0]),
        ("(a > 0) * 10", [10.0, 0.0, 0.0, 10.0]),
    ],
)
def test_comparisons(text: str, expected: list[float]) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("flag", [1.0, 0.0, 1.0, 0.0]),
        ("not flag", [0.0, 1.0, 0.0, 1.0]),
        ("flag and a", [1.0, 0.0, 0.0, 0.0]),  # elementwise logical, 0/1 results
        ("flag or c", [1.0, 1.0, 1.0, 1.0]),
        ("c or a", [1.0, 1.0, 1.0, 1.0]),
        ("not c", [1.0, 0.0, 0.0, 0.0]),
        ("flag * 3 + 1", [4.0, 1.0, 4.0, 1.0]),
        ("flag == True", [1.0, 0.0, 1.0, 0.0]),
    ],
)
def test_bool_fields(text: str, expected: list[float]) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('s == "purchased"', [1.0, 0.0, 1.0, 0.0]),
        ('s != "purchased"', [0.0, 1.0, 0.0, 1.0]),
        ('"viewed" == s', [0.0, 1.0, 0.0, 0.0]),
        ('10 if s == "purchased" else (-3 if s == "returned" else 0)', [10.0, 0.0, 10.0, -3.0]),
        ('(s == "viewed") + a', [1.0, -1.0, 0.0, 10.0]),
        ('s == "purchased" and flag', [1.0, 0.0, 1.0, 0.0]),
        ('s == "PURCHASED"', [0.0, 0.0, 0.0, 0.0]),  # case matters
    ],
)
def test_string_equality(text: str, expected: list[float]) -> None:
    assert run(text) == expected
    assert Expression.parse(text, NAMES).string_names == {"s"}


def test_string_field_accepts_numpy_str_arrays() -> None:
    env = {"s": np.array(["x", "y"])}  # dtype '<U1', not object
    assert Expression.parse('s == "y"', {"s"}).evaluate(env, 2).tolist() == [0.0, 1.0]


def test_float_trouble_gives_non_finite_rows_without_warnings() -> None:
    env = {"a": np.array([1.0, 0.0, -1.0, 4.0]), "b": np.array([0.0, 0.0, 0.0, 2.0])}
    with np.errstate(all="raise"):  # the expression must not let numpy warn or raise
        div = Expression.parse("a / b", {"a", "b"}).evaluate(env, 4)
        log = Expression.parse("log(a)", {"a"}).evaluate(env, 4)
        sqrt = Expression.parse("sqrt(a)", {"a"}).evaluate(env, 4)
        big = Expression.parse("exp(a * 1000)", {"a"}).evaluate(env, 4)
    assert div[0] == math.inf and math.isnan(div[1]) and div[2] == -math.inf and div[3] == 2.0
    assert math.isnan(log[2]) and log[1] == -math.inf and log[0] == 0.0
    assert math.isnan(sqrt[2]) and sqrt[3] == 2.0
    assert big[0] == math.inf and big[2] == 0.0


def test_names_and_numeric_names() -> None:
    e = Expression.parse('clip(a, 0, b) + (s == "x") + (1 if flag else 0)', NAMES)
    assert e.names == {"a", "b", "s", "flag"}
    assert e.string_names == {"s"}
    assert e.numeric_names == {"a", "b", "flag"}


def test_result_is_a_copy_not_the_input_column() -> None:
    env = {"a": np.array([1.0, 2.0])}
    out = Expression.parse("a", {"a"}).evaluate(env, 2)
    out[0] = 99.0
    assert env["a"].tolist() == [1.0, 2.0]


def test_evaluate_checks_bindings() -> None:
    e = Expression.parse("a + b", {"a", "b"})
    with pytest.raises(ValidationError, match=r"env\.b: no values given"):
        e.evaluate({"a": np.zeros(3)}, 3)
    with pytest.raises(ValidationError, match=r"env.b: values have shape \(2,\), expected \(3,\)"):
        e.evaluate({"a": np.zeros(3), "b": np.zeros(2)}, 3)


def test_zero_rows() -> None:
    assert Expression.parse("a + 1", {"a"}).evaluate({"a": np.zeros(0)}, 0).shape == (0,)


# ---- refusals with messages ----------------------------------------------------------------------------------


def test_message_names_construct_column_and_source() -> None:
    with pytest.raises(ExpressionError) as info:
        Expression.parse("1 + x.__class__", {"x"})
    assert str(info.value) == 'reward expression: attribute access is not allowed (col 5): "x.__class__"'
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a + d", "unknown name 'd' (col 5); declare it under fields or context (declared: a, b, c, flag, s)"),
        ("clip(a, 1)", "clip() takes 3 arguments, got 2 (col 1)"),
        ("min(a)", "min() takes 2 or more arguments, got 1"),
        ("abs(a, b)", "abs() takes 1 argument, got 2"),
        ("min + 1", "function 'min' used as a value is not allowed"),
        ('s == "x" and s > 1', "name 's' is compared with a string and also used as a number"),
        ('"x" == "y"', "a string constant compared with something other than a name"),
        ('s < "x"', "a string constant outside an ==/!= comparison"),
        ('a + "x"', "a string constant outside an ==/!= comparison"),
        ("a +", "syntax error"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("a\0", "syntax error"),
        ("1" * 400, "a numeric constant this large is not allowed"),
    ],
)
def test_refusal_messages(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        Expression.parse(text, NAMES)
    assert message in str(info.value)
    assert str(info.value).startswith("reward expression: ")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("   a.b", '(col 4): "a.b"'),
        ("a +\n b.c", "(line 1, col 4): invalid syntax"),
        ("(a +\n  b.c)", '(line 2, col 3): "b.c"'),
        ("\n\n  (a.b)", '(line 3, col 4): "a.b"'),
        ('"é" == s and a.b', '(col 14): "a.b"'),  # columns count characters, not UTF-8 bytes
    ],
)
def test_positions_are_in_the_text_as_written(text: str, where: str) -> None:
    with pytest.raises(ExpressionError) as info:
        Expression.parse(text, NAMES)
    assert where in str(info.value), str(info.value)


def test_parse_emits_no_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python warns about the invalid escape "\d" while parsing
        e = Expression.parse(r's == "\d"', NAMES)
    env = {"s": np.array(["\\d", "d"], dtype=object)}
    assert e.evaluate(env, 2).tolist() == [1.0, 0.0]


def test_non_string_text_is_refused() -> None:
    with pytest.raises(ExpressionError, match="expected a string, got int"):
        Expression.parse(3, NAMES)  # type: ignore[arg-type]


def test_length_limit() -> None:
    longest = "+".join(["a"] * 40) + " " * (MAX_LENGTH - 79)
    assert len(longest) == MAX_LENGTH
    assert Expression.parse(longest, NAMES).evaluate({"a": np.array([1.0])}, 1).tolist() == [40.0]
    with pytest.raises(ExpressionError, match=f"{MAX_LENGTH + 1} characters is longer than the maximum {MAX_LENGTH}"):
        Expression.parse(longest + " ", NAMES)


@pytest.mark.parametrize(
    "text",
    [
        "-" * (MAX_DEPTH + 5) + "a",
        "not " * (MAX_DEPTH + 5) + "a",
        "+".join(["a"] * (MAX_DEPTH + 5)),
        "abs(" * (MAX_DEPTH + 5) + "a" + ")" * (MAX_DEPTH + 5),
        "(" * 300 + "a" + ")" * 300,  # Python's own parser limit
        "-" * 4000 + "a",  # would overflow the parser's recursion without the limit
    ],
)
def test_depth_limit(text: str) -> None:
    with pytest.raises(ExpressionError, match="nest"):
        Expression.parse(text, NAMES)


def test_depth_just_within_limit_is_accepted() -> None:
    # the name is at depth MAX_DEPTH under MAX_DEPTH - 1 unary minus nodes
    text = "-" * (MAX_DEPTH - 1) + "a"
    expected = -1.0 if (MAX_DEPTH - 1) % 2 else 1.0
    assert Expression.parse(text, NAMES).evaluate({"a": np.array([1.0])}, 1).tolist() == [expected]
    with pytest.raises(ExpressionError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        Expression.parse("-" + text, NAMES)


@pytest.mark.parametrize(
    ("name", "why"),
    [("revenue", None), ("_x", None), ("x1", None), ("__x", "starts with '__'"), ("if", "keyword"),
     ("match", "keyword"), ("min", "function"), ("1x", "not an identifier"), ("a-b", "not an identifier"),
     ("café", "not an identifier")],
)
def test_check_name(name: str, why: str | None) -> None:
    result = check_name(name)
    if why is None:
        assert result is None
    else:
        assert result is not None and why in result


# ---- property: allowed expressions match a scalar reference ---------------------------------------------------

Row = dict[str, Any]


@dataclass(frozen=True)
class Node:
    """A random expression: its text, a scalar reference evaluator and its syntax-tree depth."""

    text: str
    ref: Callable[[Row], np.float64]
    depth: int


def _f(value: Any) -> np.float64:
    return np.float64(value)


def _nan_min(*xs: np.float64) -> np.float64:
    return _f(math.nan) if any(math.isnan(x) for x in xs) else min(xs)


def _nan_max(*xs: np.float64) -> np.float64:
    return _f(math.nan) if any(math.isnan(x) for x in xs) else max(xs)


def _name(name: str) -> Node:
    return Node(name, lambda r: _f(r[name]), 1)


def _const(value: float | int | bool) -> Node:
    if value < 0:  # parenthesised, else "-1 ** b" would read as -(1 ** b)
        return Node(f"({value!r})", lambda r: _f(value), 2)
    return Node(repr(value), lambda r: _f(value), 1)


def _string_test(op: str, word: str) -> Node:
    if op == "==":
        return Node(f'(s == "{word}")', lambda r: _f(r["s"] == word), 2)
    return Node(f'(s != "{word}")', lambda r: _f(r["s"] != word), 2)


LEAVES = st.one_of(
    st.sampled_from(["a", "b", "c", "flag"]).map(_name),
    st.sampled_from([0, 1, 2, -1, 0.5, -2.25, 3.0, 1e-3, True, False]).map(_const),
    st.builds(_string_test, st.sampled_from(["==", "!="]), st.sampled_from(["x", "y", "q"])),
)

BINARY: dict[str, Callable[[np.float64, np.float64], Any]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": lambda x, y: x / y,
    "//": lambda x, y: x // y,
    "%": lambda x, y: x % y,
    "**": lambda x, y: x**y,
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
    "==": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
    "and": lambda x, y: bool(x) and bool(y),
    "or": lambda x, y: bool(x) or bool(y),
}

UNARY: dict[str, Callable[[np.float64], Any]] = {
    "-": lambda x: -x,
    "+": lambda x: +x,
    "not ": lambda x: not x,
    "abs": lambda x: abs(x),
    "log": lambda x: np.log(x),
    "exp": lambda x: np.exp(x),
    "sqrt": lambda x: np.sqrt(x),
}


def _binary(op: str, x: Node, y: Node) -> Node:
    fn = BINARY[op]
    return Node(f"({x.text} {op} {y.text})", lambda r: _f(fn(x.ref(r), y.ref(r))), max(x.depth, y.depth) + 1)


def _unary(op: str, x: Node) -> Node:
    fn = UNARY[op]
    text = f"{op}({x.text})" if op.isalpha() else f"({op}{x.text})"
    return Node(text, lambda r: _f(fn(x.ref(r))), x.depth + 1)


def _chain(x: Node, y: Node, z: Node) -> Node:
    def ref(r: Row) -> np.float64:
        return _f(x.ref(r) < y.ref(r) <= z.ref(r))

    return Node(f"({x.text} < {y.text} <= {z.text})", ref, max(x.depth, y.depth, z.depth) + 1)


def _ifexp(x: Node, cond: Node, y: Node) -> Node:
    return Node(f"({x.text} if {cond.text} else {y.text})", lambda r: x.ref(r) if cond.ref(r) else y.ref(r),
                max(x.depth, cond.depth, y.depth) + 1)


def _call(fn: str, args: list[Node]) -> Node:
    def ref(r: Row) -> np.float64:
        values = [a.ref(r) for a in args]
        if fn == "min":
            return _nan_min(*values)
        if fn == "max":
            return _nan_max(*values)
        return _nan_min(_nan_max(values[0], values[1]), values[2])  # clip

    text = f"{fn}({', '.join(a.text for a in args)})"
    return Node(text, ref, max(a.depth for a in args) + 1)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(_binary, st.sampled_from(sorted(BINARY)), children, children),
        st.builds(_unary, st.sampled_from(sorted(UNARY)), children),
        st.builds(_chain, children, children, children),
        st.builds(_ifexp, children, children, children),
        st.builds(_call, st.sampled_from(["min", "max"]), st.lists(children, min_size=2, max_size=4)),
        st.builds(_call, st.just("clip"), st.lists(children, min_size=3, max_size=3)),
    )


EXPRESSIONS = st.recursive(LEAVES, _extend, max_leaves=12)

NUMBERS = st.sampled_from([0.0, 1.0, -1.0, 2.0, 0.5, -3.5, 7.0, 1e-9, 1e5])

ROWS = st.lists(
    st.fixed_dictionaries({"a": NUMBERS, "b": NUMBERS, "c": NUMBERS, "flag": st.booleans(),
                           "s": st.sampled_from(["x", "y", "z"])}),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(node=EXPRESSIONS, rows=ROWS)
def test_vectorised_matches_scalar_reference(node: Node, rows: list[Row]) -> None:
    assume(node.depth <= MAX_DEPTH)
    expression = Expression.parse(node.text, NAMES)
    env = {
        "a": np.array([r["a"] for r in rows]),
        "b": np.array([r["b"] for r in rows]),
        "c": np.array([r["c"] for r in rows]),
        "flag": np.array([1.0 if r["flag"] else 0.0 for r in rows]),
        "s": np.array([r["s"] for r in rows], dtype=object),
    }
    actual = expression.evaluate(env, len(rows))
    with np.errstate(all="ignore"):
        expected = np.array([node.ref({**r, "flag": 1.0 if r["flag"] else 0.0}) for r in rows], dtype=np.float64)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0, equal_nan=True, err_msg=node.text)


# ---- property: disallowed constructs are refused wherever they appear ----------------------------------------

# (construct, the words the message must contain, where the reported column must point)
BAD = [
    ("a.real", "attribute access", "a.real"),
    ("a.__class__", "attribute access", "a.__class__"),
    ("a.b()", "attribute access", "a.b"),
    ("a[0]", "subscript", "a[0]"),
    ("a[1:2]", "subscript", "a[1:2]"),
    ("open('x')", "call to 'open'", "open"),
    ("__import__('os')", "call to '__import__'", "__import__"),
    ("eval('1')", "call to 'eval'", "eval"),
    ("exec('1')", "call to 'exec'", "exec"),
    ("getattr(a, 'real')", "call to 'getattr'", "getattr"),
    ("compile('1', '', 'eval')", "call to 'compile'", "compile"),
    ("globals()", "call to 'globals'", "globals"),
    ("type(a)", "call to 'type'", "type"),
    ("sum(a, b)", "call to 'sum'", "sum"),
    ("a(1)", "call to 'a'", "a(1)"),
    ("min(a, key=b)", "keyword argument", "key=b"),
    ("min(a, **b)", "keyword argument", "**b"),
    ("max(*a)", "starred argument", "*a"),
    ("lambda: 1", "lambda", "lambda"),
    ("(lambda x: x)(a)", "lambda", "lambda"),
    ("[x for x in a]", "list comprehension", "[x for"),
    ("{x for x in a}", "set comprehension", "{x for"),
    ("{x: 1 for x in a}", "dict comprehension", "{x: 1 for"),
    ("(x for x in a)", "generator expression", "(x for"),
    ("min(x for x in a)", "generator expression", "(x for"),
    ("(b := 1)", "assignment expression", "b := 1"),
    ("f'{a}'", "f-string", "f'"),
    ("__class__", "dunder name '__class__'", "__class__"),
    ("__builtins__", "dunder name '__builtins__'", "__builtins__"),
    ("[a, b]", "list literal", "[a, b]"),
    ("(a, b)", "tuple", "(a, b)"),
    ("{a}", "set literal", "{a}"),
    ("{a: b}", "dict literal", "{a: b}"),
    ("a & b", "operator '&'", "a & b"),
    ("a | b", "operator '|'", "a | b"),
    ("a << b", "operator '<<'", "a << b"),
    ("a @ b", "operator '@'", "a @ b"),
    ("~a", "operator '~'", "~a"),
    ("a is b", "comparison 'is'", "a is b"),
    ("a in b", "comparison 'in'", "a in b"),
    ("a not in b", "comparison 'not in'", "a not in b"),
    ("None", "constant None", "None"),
    ("1j", "constant complex", "1j"),
    ("b'x'", "constant bytes", "b'x'"),
    ("...", "constant ellipsis", "..."),
    ("'text'", "string constant", "'text'"),
    ("await a", "await", "await a"),
    ("(yield a)", "yield", "yield a"),
]

TEMPLATES = [
    "{}",
    "a + {}",
    "{} * 2 - b",
    "min(a, {})",
    "max({}, b, c)",
    "clip({}, 0, 1)",
    "abs({})",
    "log({} + 1)",
    "({}) if flag else b",
    "a if ({}) else b",
    "a if flag else ({})",
    "a < ({}) <= b",
    "not ({})",
    "flag and ({})",
    "-({}) ** 2",
    '(s == "x") + ({})',
]


@settings(max_examples=300, deadline=None)
@given(bad=st.sampled_from(BAD), template=st.sampled_from(TEMPLATES), pad=st.integers(0, 3))
def test_disallowed_constructs_are_refused(bad: tuple[str, str, str], template: str, pad: int) -> None:
    construct, words, anchor = bad
    text = " " * pad + template.format(f"({construct})")
    with pytest.raises(ConfigError) as info:
        Expression.parse(text, NAMES)
    message = str(info.value)
    assert isinstance(info.value, ExpressionError)
    assert words in message, message
    assert "is not allowed" in message
    match = re.search(r"\(col (\d+)\)", message)
    assert match is not None, message
    col = int(match.group(1))
    assert text[col - 1:].startswith(anchor), (text, message)


CHARS = st.sampled_from([*"abcs flag()[]{}.,:;=<>!+-*/%&|^~@'\"_0123456789ejnotifelsdmx", "__", "lambda", " if ",
                         " else "])


@settings(max_examples=500, deadline=None)
@given(text=st.lists(CHARS, max_size=30).map("".join))
def test_any_text_parses_or_raises_config_error(text: str) -> None:
    try:
        expression = Expression.parse(text, NAMES)
    except ConfigError as e:
        assert str(e).startswith("reward expression: ")
        return
    env = dict(ENV)
    if "s" in expression.numeric_names:  # used as a number: bind numbers
        env["s"] = np.array([1.0, 2.0, 3.0, 4.0])
    out = expression.evaluate(env, 4)
    assert out.shape == (4,) and out.dtype == np.float64
