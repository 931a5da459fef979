"""The criteria pattern: numbered conditions combined with and/or and parentheses, e.g. (1 and 2) or 3."""
import re
from collections.abc import Callable

TOKEN_RE = re.compile(r"\s*(?:(\d+)|((?i:and|or))\b|(\()|(\))|(\S))")

Evaluator = Callable[[dict[int, bool]], bool]


class PatternError(ValueError):
    pass


def pattern_compile(pattern: str, numbers: set[int]) -> Evaluator:
    """Parse once into a function of {condition number: result}; errors say what is wrong and where."""
    if not pattern.strip():
        ordered = sorted(numbers)
        return lambda results: all(results[n] for n in ordered)
    tokens = _tokens(pattern)
    position = 0

    def peek() -> tuple[str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal position
        token = peek()
        if token is None:
            raise PatternError("The pattern ends too early: a condition number or “(” is missing.")
        position += 1
        return token

    def expression() -> Evaluator:  # or-terms
        left = term()
        while (token := peek()) and token == ("op", "or"):
            take()
            left = _either(left, term())
        return left

    def term() -> Evaluator:  # and-factors; "and" binds tighter than "or"
        left = factor()
        while (token := peek()) and token == ("op", "and"):
            take()
            left = _both(left, factor())
        return left

    def factor() -> Evaluator:
        kind, value = take()
        if kind == "number":
            number = int(value)
            if number not in numbers:
                raise PatternError(f"The pattern uses condition {number}, which does not exist.")
            used.add(number)
            return _condition(number)
        if kind == "open":
            inner = expression()
            if peek() != ("close", ")"):
                raise PatternError("A “(” in the pattern is not closed.")
            take()
            return inner
        raise PatternError(f"Unexpected “{value}” in the pattern: expected a condition number or “(”.")

    used: set[int] = set()
    evaluator = expression()
    if (token := peek()) is not None:
        raise PatternError(f"Unexpected “{token[1]}” in the pattern after a complete expression.")
    if unused := numbers - used:
        raise PatternError(f"Condition(s) {', '.join(map(str, sorted(unused)))} are not used in the pattern.")
    return evaluator


def _tokens(pattern: str) -> list[tuple[str, str]]:
    tokens = []
    for number, operator, open_, close, other in TOKEN_RE.findall(pattern):
        if number:
            tokens.append(("number", number))
        elif operator:
            tokens.append(("op", operator.lower()))
        elif open_:
            tokens.append(("open", "("))
        elif close:
            tokens.append(("close", ")"))
        elif other:
            raise PatternError(f"“{other}” is not allowed in the pattern: use numbers, and, or and parentheses.")
    return tokens


def _either(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda results: a(results) or b(results)


def _both(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda results: a(results) and b(results)


def _condition(number: int) -> Evaluator:
    return lambda results: results[number]
