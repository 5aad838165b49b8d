"""A small, safe expression language for rewards, evaluated over numpy columns.

The text is parsed with :func:`ast.parse` in ``eval`` mode and the tree is checked against a whitelist: numbers and
booleans, names declared by the reward spec, unary ``+ - not``, binary ``+ - * / // % **``, comparisons (chained
ones too), ``and``/``or``, ``a if c else b`` and calls to :data:`FUNCTIONS` with positional arguments. String
constants may appear only in ``==``/``!=`` comparisons with a name (``status == "purchased"``). Everything else is
refused with :class:`ExpressionError` naming the construct and its column.

The checked tree is turned into a tree of small Python closures over numpy arrays; nothing is ever passed to
``eval``, ``exec`` or ``compile``. Every value is a float64 array with one entry per row (booleans are 0.0/1.0), so
one call evaluates a million rows. Floating-point trouble (division by zero, ``log`` of a non-positive number,
overflow) does not raise: it produces ``nan`` or ``inf`` in the affected rows, which the caller reports per row.
"""

from __future__ import annotations

import ast
import keyword
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from rlops.errors import ConfigError, ValidationError

#: Longest expression text accepted, in characters.
MAX_LENGTH: Final = 4096
#: Deepest syntax tree accepted, in nested nodes (``a + b`` is 2 levels, ``-(a + b)`` is 3).
MAX_DEPTH: Final = 50

Env = Mapping[str, np.ndarray]
_Fn = Callable[[Env, int], np.ndarray]


def _clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    # min(max(x, lo), hi), as documented in FUNCTIONS: hi wherever lo > hi
    return np.asarray(np.minimum(np.maximum(x, lo), hi), dtype=np.float64)


def _min(*xs: np.ndarray) -> np.ndarray:
    out = xs[0]
    for x in xs[1:]:
        out = np.minimum(out, x)
    return out


def _max(*xs: np.ndarray) -> np.ndarray:
    out = xs[0]
    for x in xs[1:]:
        out = np.maximum(out, x)
    return out


def _log(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.log(x), dtype=np.float64)


def _exp(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.exp(x), dtype=np.float64)


def _sqrt(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.sqrt(x), dtype=np.float64)


def _abs(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(x), dtype=np.float64)


@dataclass(frozen=True)
class _Function:
    impl: Callable[..., np.ndarray]
    min_args: int
    max_args: int | None
    usage: str


#: The functions an expression may call, by name. ``min``/``max`` take two or more arguments and work row by row;
#: ``clip(x, lo, hi)`` is ``min(max(x, lo), hi)``; ``log`` is the natural logarithm.
FUNCTIONS: Final[Mapping[str, _Function]] = {
    "min": _Function(_min, 2, None, "min(a, b, ...)"),
    "max": _Function(_max, 2, None, "max(a, b, ...)"),
    "abs": _Function(_abs, 1, 1, "abs(x)"),
    "clip": _Function(_clip, 3, 3, "clip(x, lo, hi)"),
    "log": _Function(_log, 1, 1, "log(x)"),
    "exp": _Function(_exp, 1, 1, "exp(x)"),
    "sqrt": _Function(_sqrt, 1, 1, "sqrt(x)"),
}

_BINARY: Final[Mapping[type[ast.operator], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.remainder,
    ast.Pow: np.power,
}

_COMPARE: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], np.ndarray]]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}

_OPERATOR_SYMBOLS: Final[Mapping[type[ast.AST], str]] = {
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}

# Names of refused constructs, as the error message shows them.
_CONSTRUCTS: Final[Mapping[type[ast.AST], str]] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Starred: "starred argument",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.NamedExpr: "assignment expression (:=)",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.List: "list literal",
    ast.Tuple: "tuple",
    ast.Set: "set literal",
    ast.Dict: "dict literal",
    ast.Slice: "slice",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


class ExpressionError(ConfigError):
    """A reward expression is malformed or uses a construct outside the whitelist.

    Args:
        detail: what is wrong, with the column and the offending source, e.g.
            ``attribute access is not allowed (col 5): "x.__class__"``. The message is ``reward expression: `` plus
            the detail.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"reward expression: {detail}")


def is_dunder(name: str) -> bool:
    """Whether ``name`` starts with two underscores (``__class__``, ``__import__``); such names are never allowed."""
    return name.startswith("__")


def check_name(name: str) -> str | None:
    """Why ``name`` cannot be declared as a field or context name, or ``None`` when it can.

    A name must be a Python identifier that is not a keyword, not a dunder and not one of :data:`FUNCTIONS`.
    """
    if not name.isidentifier() or not name.isascii():
        return f"{name!r} is not an identifier (letters, digits and underscores, not starting with a digit)"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"{name!r} is a Python keyword"
    if is_dunder(name):
        return f"{name!r} starts with '__'"
    if name in FUNCTIONS:
        return f"{name!r} is the name of a function the expression language provides"
    return None


def _float_column(value: float) -> _Fn:
    def constant(env: Env, n: int) -> np.ndarray:
        return np.full(n, value, dtype=np.float64)

    return constant


def _string_constant(value: str) -> Callable[[Env, int], Any]:
    def constant(env: Env, n: int) -> Any:
        return value

    return constant


def _name(name: str) -> _Fn:
    def load(env: Env, n: int) -> np.ndarray:
        return env[name]

    return load


def _is_string(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _string_value(node: ast.expr) -> str:
    return str(node.value) if isinstance(node, ast.Constant) else ""


def _truthy(x: np.ndarray) -> np.ndarray:
    # NaN counts as true, like Python's bool(float("nan")).
    return np.asarray(np.not_equal(x, 0.0), dtype=bool)


@dataclass(frozen=True)
class _Layout:
    """Where the parsed (stripped) source sits in the text as written, to report positions people can find."""

    lead_lines: int
    lead_cols: int
    multiline: bool

    @classmethod
    def of(cls, text: str) -> _Layout:
        lead = text[: len(text) - len(text.lstrip())]
        return cls(lead.count("\n"), len(lead) - (lead.rfind("\n") + 1), "\n" in text.rstrip())

    def position(self, lineno: int, col: int) -> str:
        """``col N``, or ``line L, col N`` for a multi-line text, from a 1-based line and 0-based column of the
        stripped source."""
        if lineno == 1:
            col += self.lead_cols
        if self.multiline:
            return f"line {lineno + self.lead_lines}, col {col + 1}"
        return f"col {col + 1}"


class _Compiler:
    """Checks one parsed tree against the whitelist and turns it into closures, in a single walk."""

    def __init__(self, source: str, layout: _Layout, allowed: frozenset[str]) -> None:
        self.text = source
        self.layout = layout
        self.allowed = allowed
        self.lines = source.split("\n")
        self.numeric_names: set[str] = set()
        self.string_names: set[str] = set()

    # ---- errors ------------------------------------------------------------------------------------------------

    def position(self, node: ast.AST) -> str:
        """``col N`` (1-based characters), or ``line L, col N`` for a multi-line text."""
        lineno: int = getattr(node, "lineno", 1)
        offset: int = getattr(node, "col_offset", 0)
        # ast offsets count UTF-8 bytes; people count characters
        line = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        col = len(line.encode()[:offset].decode(errors="replace"))
        return self.layout.position(lineno, col)

    def refuse(self, node: ast.AST, what: str, hint: str = "") -> ExpressionError:
        segment = ast.get_source_segment(self.text, node) if hasattr(node, "end_col_offset") else None
        where = f" ({self.position(node)})" if hasattr(node, "col_offset") else ""
        shown = f": {_quote(segment)}" if segment else ""
        return ExpressionError(f"{what} is not allowed{where}{shown}{hint}")

    def refuse_node(self, node: ast.AST) -> ExpressionError:
        kind = type(node)
        if kind in _CONSTRUCTS:
            return self.refuse(node, _CONSTRUCTS[kind])
        return self.refuse(node, f"{kind.__name__} expression")

    # ---- the walk ----------------------------------------------------------------------------------------------

    def build(self, node: ast.AST, depth: int) -> _Fn:
        if depth > MAX_DEPTH:
            raise self.refuse(node, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            self.numeric_names.add(self.check_name_node(node))
            return _name(node.id)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, ast.BoolOp):
            return self.boolean(node, depth)
        if isinstance(node, ast.Compare):
            return self.compare(node, depth)
        if isinstance(node, ast.IfExp):
            return self.conditional(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        raise self.refuse_node(node)

    def constant(self, node: ast.Constant) -> _Fn:
        value = node.value
        if isinstance(value, str):
            raise self.refuse(node, "a string constant outside an ==/!= comparison with a name",
                              hint=" (strings may only be compared, e.g. status == \"purchased\")")
        if isinstance(value, bool):
            return _float_column(1.0 if value else 0.0)
        if isinstance(value, int | float):
            try:
                as_float = float(value)
            except OverflowError:
                raise self.refuse(node, "a numeric constant this large") from None
            return _float_column(as_float)
        shown = "None" if value is None else type(value).__name__
        raise self.refuse(node, f"constant {shown}")

    def check_name_node(self, node: ast.Name) -> str:
        name = node.id
        if is_dunder(name):
            raise self.refuse(node, f"dunder name {name!r}")
        if name in FUNCTIONS:
            raise self.refuse(node, f"function {name!r} used as a value", hint=f" (call it: {FUNCTIONS[name].usage})")
        if name not in self.allowed:
            known = ", ".join(sorted(self.allowed)) or "none"
            raise ExpressionError(f"unknown name {name!r} ({self.position(node)}); declare it under fields or context "
                                  f"(declared: {known})")
        return name

    def unary(self, node: ast.UnaryOp, depth: int) -> _Fn:
        operand = self.build(node.operand, depth + 1)
        if isinstance(node.op, ast.USub):
            return lambda env, n: np.negative(operand(env, n))
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda env, n: np.equal(operand(env, n), 0.0).astype(np.float64)
        raise self.refuse(node, f"operator {_OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)!r}")

    def binary(self, node: ast.BinOp, depth: int) -> _Fn:
        ufunc = _BINARY.get(type(node.op))
        if ufunc is None:
            raise self.refuse(node, f"operator {_OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)!r}")
        left = self.build(node.left, depth + 1)
        right = self.build(node.right, depth + 1)
        return lambda env, n: ufunc(left(env, n), right(env, n))

    def boolean(self, node: ast.BoolOp, depth: int) -> _Fn:
        parts = [self.build(v, depth + 1) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def evaluate(env: Env, n: int) -> np.ndarray:
            out = _truthy(parts[0](env, n))
            for part in parts[1:]:
                out = combine(out, _truthy(part(env, n)))
            return out.astype(np.float64)

        return evaluate

    def compare(self, node: ast.Compare, depth: int) -> _Fn:
        operands = [node.left, *node.comparators]
        ufuncs: list[Callable[[Any, Any], np.ndarray]] = []
        for op in node.ops:
            ufunc = _COMPARE.get(type(op))
            if ufunc is None:
                raise self.refuse(node, f"comparison {_OPERATOR_SYMBOLS.get(type(op), type(op).__name__)!r}")
            ufuncs.append(ufunc)
        # each operand is built once (building twice would be exponential in nested chains)
        sides = [self.compare_operand(operands, node.ops, j, depth + 1) for j in range(len(operands))]

        def evaluate(env: Env, n: int) -> np.ndarray:
            # each operand is evaluated once, as in Python's chained comparisons
            values = [side(env, n) for side in sides]
            out = np.ones(n, dtype=bool)
            for i, ufunc in enumerate(ufuncs):
                out &= np.asarray(ufunc(values[i], values[i + 1]), dtype=bool)
            return out.astype(np.float64)

        return evaluate

    def compare_operand(self, operands: list[ast.expr], ops: list[ast.cmpop], j: int,
                        depth: int) -> Callable[[Env, int], Any]:
        """Build operand ``j`` of a comparison; strings are allowed only as ``name ==/!= "text"``."""
        node = operands[j]
        if depth > MAX_DEPTH:
            raise self.refuse(node, f"nesting deeper than {MAX_DEPTH} levels")
        neighbours = [(operands[k], ops[min(j, k)]) for k in (j - 1, j + 1) if 0 <= k < len(operands)]
        if _is_string(node):
            for other, op in neighbours:
                if not isinstance(op, ast.Eq | ast.NotEq):
                    raise self.refuse(node, "a string constant outside an ==/!= comparison with a name")
                if not isinstance(other, ast.Name):
                    raise self.refuse(node, "a string constant compared with something other than a name")
            return _string_constant(_string_value(node))
        if isinstance(node, ast.Name) and any(_is_string(other) for other, _ in neighbours):
            name = self.check_name_node(node)
            self.string_names.add(name)
            if not all(_is_string(other) for other, _ in neighbours):
                self.numeric_names.add(name)
            return _name(name)
        return self.build(node, depth)

    def conditional(self, node: ast.IfExp, depth: int) -> _Fn:
        test = self.build(node.test, depth + 1)
        body = self.build(node.body, depth + 1)
        orelse = self.build(node.orelse, depth + 1)
        return lambda env, n: np.where(_truthy(test(env, n)), body(env, n), orelse(env, n))

    def call(self, node: ast.Call, depth: int) -> _Fn:
        func = node.func
        allowed = ", ".join(FUNCTIONS)
        if not isinstance(func, ast.Name):
            if type(func) in _CONSTRUCTS:  # name what is being called, e.g. attribute access in ``x.y()``
                raise self.refuse_node(func)
            raise self.refuse(node, "a call of anything but a function name", hint=f" (functions: {allowed})")
        spec = FUNCTIONS.get(func.id)
        if spec is None:
            raise self.refuse(node, f"call to {func.id!r}", hint=f" (functions: {allowed})")
        if node.keywords:
            raise self.refuse(node.keywords[0], "keyword argument", hint=f" in {func.id}() (use {spec.usage})")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.refuse(arg, "starred argument", hint=f" in {func.id}() (use {spec.usage})")
        args = [self.build(a, depth + 1) for a in node.args]
        count = len(node.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            raise ExpressionError(f"{func.id}() takes {_arity(spec)}, got {count} ({self.position(node)}): "
                                  f"{_quote(ast.get_source_segment(self.text, node))}; use {spec.usage}")
        impl = spec.impl
        return lambda env, n: impl(*(a(env, n) for a in args))


def _arity(spec: _Function) -> str:
    if spec.max_args is None:
        return f"{spec.min_args} or more arguments"
    if spec.min_args == spec.max_args:
        return f"{spec.min_args} argument{'s' if spec.min_args != 1 else ''}"
    return f"{spec.min_args} to {spec.max_args} arguments"  # pragma: no cover - no such function yet


def _quote(segment: str | None, limit: int = 60) -> str:
    text = segment or ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f'"{text}"'


@dataclass(frozen=True)
class Expression:
    """A checked reward expression, ready to evaluate over columns.

    Build one with :meth:`parse`. Example:
        >>> e = Expression.parse("clip(revenue - 0.1 * price, 0, 100) + (5 if clicked else 0)",
        ...                      {"revenue", "price", "clicked"})
        >>> e.evaluate({"revenue": np.array([10.0, 200.0]), "price": np.array([20.0, 0.0]),
        ...             "clicked": np.array([1.0, 0.0])}, 2).tolist()
        [13.0, 100.0]

    Attributes:
        text: the source text.
        names: every name the expression reads.
        string_names: names compared with string constants (``status == "paid"``); they bind to arrays of
            ``str`` (dtype ``object`` or ``str``) and may not be used as numbers anywhere in the expression.
    """

    text: str
    names: frozenset[str]
    string_names: frozenset[str]
    _fn: _Fn = field(repr=False, compare=False)

    @property
    def numeric_names(self) -> frozenset[str]:
        """Names used as numbers (bind to float64 arrays, booleans as 0.0/1.0)."""
        return self.names - self.string_names

    @classmethod
    def parse(cls, text: str, allowed_names: Iterable[str]) -> Expression:
        """Parse and check ``text``, reading only ``allowed_names``.

        Args:
            text: the expression, at most :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels deep.
            allowed_names: the names it may read (the spec's fields and context features).

        Raises:
            ExpressionError: (a :class:`~rlops.errors.ConfigError`) for a syntax error, an unknown or dunder name,
                a construct outside the whitelist, a wrong number of arguments, or text that is too long or
                nested too deeply. The message names the construct and its 1-based column.
        """
        if not isinstance(text, str):
            raise ExpressionError(f"expected a string, got {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise ExpressionError(f"{len(text)} characters is longer than the maximum {MAX_LENGTH}")
        if not text.strip():
            raise ExpressionError("is empty")
        source = text.strip()  # eval mode refuses leading whitespace
        layout = _Layout.of(text)
        try:
            with warnings.catch_warnings():  # e.g. SyntaxWarning for '"a" is "b"', refused below anyway
                warnings.simplefilter("ignore")
                tree = ast.parse(source, mode="eval")
        except SyntaxError as e:
            where = f" ({layout.position(e.lineno or 1, e.offset - 1)})" if e.offset else ""
            raise ExpressionError(f"syntax error{where}: {e.msg}") from e
        except (RecursionError, MemoryError) as e:
            raise ExpressionError(f"nesting deeper than {MAX_DEPTH} levels is not allowed") from e
        except ValueError as e:  # e.g. an integer literal with too many digits
            raise ExpressionError(f"cannot be parsed: {e}") from e
        compiler = _Compiler(source, layout, frozenset(allowed_names))
        fn = compiler.build(tree.body, 1)
        both = compiler.numeric_names & compiler.string_names
        if both:
            name = sorted(both)[0]
            raise ExpressionError(f"name {name!r} is compared with a string and also used as a number; a name is "
                                  f"either a string or a number")
        return cls(text, frozenset(compiler.numeric_names | compiler.string_names),
                   frozenset(compiler.string_names), fn)

    def evaluate(self, env: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """Evaluate over ``n`` rows.

        Args:
            env: one 1-D array of length ``n`` per name in :attr:`names`: float64 (or anything numpy converts to
                it, booleans as 0/1) for numeric names, ``str`` values for :attr:`string_names`.
            n: number of rows.

        Returns:
            A float64 array of length ``n``. Rows where the arithmetic fails hold ``nan`` or ``±inf``; no
            floating-point warning or exception escapes.

        Raises:
            ValidationError: an array is missing or has the wrong shape (a programming error in the caller).
        """
        columns: dict[str, np.ndarray] = {}
        for name in self.names:
            if name not in env:
                raise ValidationError(f"env.{name}", "no values given")
            if name in self.string_names:
                column = np.asarray(env[name], dtype=object)
            else:
                column = np.asarray(env[name], dtype=np.float64)
            if column.shape != (n,):
                raise ValidationError(f"env.{name}", f"values have shape {column.shape}, expected ({n},)")
            columns[name] = column
        with np.errstate(all="ignore"):
            result = self._fn(columns, n)
        # a copy, so that the result never aliases an input column (e.g. for the expression "revenue")
        return np.array(result, dtype=np.float64, copy=True)


__all__ = ["FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "Expression", "ExpressionError", "check_name", "is_dunder"]
