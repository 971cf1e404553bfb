"""Tests of the engine (adapters/): the mock backend, owned streams, errors, and the backend conformance suite.

The suite's module is not a test module, so its plain ``assert`` statements get pytest's detailed failure
messages only if registered for rewriting before it is first imported, which this package import guarantees.
"""

import pytest

pytest.register_assert_rewrite("tests.adapters.conformance")
