"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in the fuzzing run of test_schemathesis.py.

CPython 3.11 before 3.11.8 can raise `SystemError: AST constructor recursion depth mismatch` from `ast.parse` when it
is called deep in a stack (python/cpython#106905). Hypothesis calls `ast.parse` only to *describe* a lambda in a
strategy's repr, so that error aborted whole schemathesis phases for nothing. Here a description that cannot be
made falls back to Hypothesis' own "unknown" text; nothing about generation or checking changes.
"""

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _lambda_description(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description
