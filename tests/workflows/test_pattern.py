import itertools

import pytest

from workflows.pattern import PatternError, pattern_compile


@pytest.mark.parametrize(("pattern", "expected"), [
    ("(1 and 2) or 3", lambda a, b, c: (a and b) or c),
    ("1 and (2 or 3)", lambda a, b, c: a and (b or c)),
    ("1 or 2 and 3", lambda a, b, c: a or (b and c)),  # and binds tighter, as in the CRM products
    ("1 AND 2 AND 3", lambda a, b, c: a and b and c),
    ("((1)) Or (2 oR 3)", lambda a, b, c: a or b or c),
    ("", lambda a, b, c: a and b and c),  # empty: all conditions
])
def test_patterns_combine_conditions_as_written(pattern, expected):
    evaluate = pattern_compile(pattern, {1, 2, 3})
    for a, b, c in itertools.product([False, True], repeat=3):
        assert evaluate({1: a, 2: b, 3: c}) == expected(a, b, c), (pattern, a, b, c)


@pytest.mark.parametrize(("pattern", "message"), [
    ("(1 and 2", "A “(” in the pattern is not closed."),
    ("1 and", "The pattern ends too early: a condition number or “(” is missing."),
    ("1 2", "Unexpected “2” in the pattern after a complete expression."),
    ("1 and 4", "The pattern uses condition 4, which does not exist."),
    ("1 and 2", "Condition(s) 3 are not used in the pattern."),
    ("1 & 2 & 3", "“&” is not allowed in the pattern: use numbers, and, or and parentheses."),
    ("and 1", "Unexpected “and” in the pattern: expected a condition number or “(”."),
    ("1 xor 2 or 3", "“x” is not allowed in the pattern: use numbers, and, or and parentheses."),
])
def test_invalid_patterns_are_refused_with_a_reason(pattern, message):
    with pytest.raises(PatternError) as caught:
        pattern_compile(pattern, {1, 2, 3})
    assert str(caught.value) == message
