"""DynamoDB condition and update expressions on wire-format items, as far as the benchmarks need them.

The fake AWS (bench/fake_aws.py) answers TransactWriteItems with them, and the call meter
(bench/calls.py) keeps a shadow of the items it saw written to size Updates as DynamoDB bills
them (the larger of the item before and after). Supported:

- conditions: `attribute_exists(p)`, `attribute_not_exists(p)`, `contains(p, v)`,
  `begins_with(p, v)`, comparisons (= <> < <= > >=) of paths and `:values`, AND, OR, NOT and
  parentheses; paths are names or `#aliases`, dotted into maps;
- updates: SET of a value, `a + b`, `a - b` or `if_not_exists(p, v)`; ADD of a number or a set;
  REMOVE; top-level attributes only.

Anything else raises NotImplementedError: a benchmark that meets it must say so, not answer wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

Item = dict[str, Any]  # wire format: {"name": {"S": "..."}}
_TOKEN = re.compile(r"\s*(<>|<=|>=|=|<|>|\(|\)|,|\+|-|[#:]?[A-Za-z0-9_]+(?:\.[#A-Za-z0-9_]+)*)")
_CLAUSE = re.compile(r"\b(SET|REMOVE|ADD|DELETE)\b", re.IGNORECASE)
_COMPARATORS = ("=", "<>", "<", "<=", ">", ">=")


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise NotImplementedError(f"expression syntax not supported: {text[position:]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class _Context:
    def __init__(
        self,
        item: Item | None,
        names: Mapping[str, str] | None,
        values: Mapping[str, Any] | None,
    ) -> None:
        self.item = item or {}
        self.names = names or {}
        self.values = values or {}

    def name(self, token: str) -> str:
        return self.names[token] if token.startswith("#") else token

    def path(self, token: str) -> list[str]:
        return [self.name(part) for part in token.split(".")]

    def resolve(self, token: str) -> Any | None:
        """The wire value of a `:value` or of a path in the item (None when absent)."""
        if token.startswith(":"):
            return self.values[token]
        value: Any = {"M": self.item}
        for part in self.path(token):
            inner = value.get("M") if isinstance(value, dict) else None
            if inner is None or part not in inner:
                return None
            value = inner[part]
        return value


def _number(value: Mapping[str, Any]) -> Decimal:
    return Decimal(value["N"])


def _compare(left: Any | None, operator: str, right: Any | None) -> bool:
    if left is None or right is None or next(iter(left)) != next(iter(right)):
        return operator == "<>"  # a missing attribute or another type is never equal
    kind = next(iter(left))
    a: Any = _number(left) if kind == "N" else left[kind]
    b: Any = _number(right) if kind == "N" else right[kind]
    if operator == "=":
        return bool(a == b)
    if operator == "<>":
        return bool(a != b)
    if kind not in ("N", "S", "B"):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[operator]


def _contains(container: Any | None, value: Any | None) -> bool:
    if container is None or value is None:
        return False
    kind, inner = next(iter(container.items()))
    if kind == "S":
        return "S" in value and value["S"] in inner
    if kind in ("SS", "NS", "BS"):
        return next(iter(value.values())) in inner
    if kind == "L":
        return value in inner
    return False


class _Condition:
    """Recursive descent over the tokens: or := and {OR and}; and := not {AND not}."""

    def __init__(self, tokens: list[str], context: _Context) -> None:
        self.tokens = tokens
        self.at = 0
        self.context = context

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected):
            raise NotImplementedError(f"expected {expected or 'a token'}, found {token!r}")
        self.at += 1
        return token

    def parse(self) -> bool:
        result = self.disjunction()
        if self.peek() is not None:
            raise NotImplementedError(f"unexpected {self.peek()!r} in a condition")
        return result

    def disjunction(self) -> bool:
        result = self.conjunction()
        while (self.peek() or "").upper() == "OR":
            self.take()
            right = self.conjunction()
            result = result or right
        return result

    def conjunction(self) -> bool:
        result = self.negation()
        while (self.peek() or "").upper() == "AND":
            self.take()
            right = self.negation()
            result = result and right
        return result

    def negation(self) -> bool:
        if (self.peek() or "").upper() == "NOT":
            self.take()
            return not self.negation()
        return self.primary()

    def primary(self) -> bool:
        token = self.take()
        if token == "(":
            result = self.disjunction()
            self.take(")")
            return result
        function = token.lower()
        if function in ("attribute_exists", "attribute_not_exists", "contains", "begins_with"):
            self.take("(")
            arguments = [self.take()]
            while self.peek() == ",":
                self.take()
                arguments.append(self.take())
            self.take(")")
            values = [self.context.resolve(a) for a in arguments]
            if function == "attribute_exists":
                return values[0] is not None
            if function == "attribute_not_exists":
                return values[0] is None
            if function == "contains":
                return _contains(values[0], values[1])
            prefix, whole = values[1], values[0]
            return bool(
                whole and prefix and "S" in whole and whole["S"].startswith(prefix.get("S", ""))
            )
        operator = self.take()
        if operator not in _COMPARATORS:
            raise NotImplementedError(f"operator {operator!r} not supported")
        right = self.take()
        return _compare(self.context.resolve(token), operator, self.context.resolve(right))


def condition_holds(
    expression: str | None,
    item: Item | None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Whether a ConditionExpression holds for `item` (None: no item with that key)."""
    if not expression:
        return True
    return _Condition(_tokens(expression), _Context(item, names, values)).parse()


def _split_top(tokens: list[str]) -> list[list[str]]:
    """Comma-separated actions of one clause (commas inside function calls kept)."""
    actions: list[list[str]] = [[]]
    depth = 0
    for token in tokens:
        if token == "," and depth == 0:
            actions.append([])
            continue
        depth += {"(": 1, ")": -1}.get(token, 0)
        actions[-1].append(token)
    return [a for a in actions if a]


def _operand(tokens: list[str], context: _Context) -> Any | None:
    if tokens[0].lower() == "if_not_exists" and tokens[1] == "(" and tokens[-1] == ")":
        path, default = _split_top(tokens[2:-1])
        current = context.resolve(path[0])
        return current if current is not None else context.resolve(default[0])
    if len(tokens) == 1:
        return context.resolve(tokens[0])
    raise NotImplementedError(f"update operand {' '.join(tokens)!r} not supported")


def _set_value(tokens: list[str], context: _Context) -> Any:
    for sign in ("+", "-"):
        if sign in tokens:
            at = tokens.index(sign)
            left, right = _operand(tokens[:at], context), _operand(tokens[at + 1 :], context)
            if left is None or right is None:
                raise NotImplementedError("arithmetic on a missing attribute")
            total = (
                _number(left) + _number(right) if sign == "+" else _number(left) - _number(right)
            )
            return {"N": str(total)}
    value = _operand(tokens, context)
    if value is None:
        raise NotImplementedError(f"SET from a missing attribute: {' '.join(tokens)!r}")
    return value


def _top_name(token: str, context: _Context) -> str:
    path = context.path(token)
    if len(path) != 1:
        raise NotImplementedError(f"nested update paths not supported: {token!r}")
    return path[0]


def apply_update(
    item: Item | None,
    key: Mapping[str, Any],
    expression: str,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> Item:
    """The item after an UpdateExpression (a new item from `key` when there was none)."""
    updated: Item = dict(item) if item is not None else dict(key)
    context = _Context(item, names, values)
    parts = _CLAUSE.split(expression)
    for keyword, body in zip(parts[1::2], parts[2::2], strict=True):
        clause = keyword.upper()
        for action in _split_top(_tokens(body)):
            name = _top_name(action[0], context)
            if clause == "SET":
                if len(action) < 3 or action[1] != "=":
                    raise NotImplementedError(f"SET action {' '.join(action)!r}")
                updated[name] = _set_value(action[2:], context)
            elif clause == "REMOVE":
                updated.pop(name, None)
            elif clause == "ADD":
                updated[name] = _added(updated.get(name), context.resolve(action[1]))
            else:
                raise NotImplementedError(f"{clause} clauses not supported")
    return updated


def _added(current: Any | None, value: Any) -> Any:
    kind = next(iter(value))
    if current is None:
        return value
    if kind == "N":
        return {"N": str(_number(current) + _number(value))}
    if kind in ("SS", "NS", "BS"):
        return {kind: list(dict.fromkeys([*current[kind], *value[kind]]))}
    raise NotImplementedError(f"ADD of a {kind} value")
