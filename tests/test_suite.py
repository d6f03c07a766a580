"""The suite's own plumbing: how `make test` shares work between pytest-xdist workers."""

from .conftest import ONE_WORKER_MODULES, one_worker_scope
from .workflow_helpers import ROOT


def test_each_one_worker_module_is_one_unit_of_work():
    for module in ONE_WORKER_MODULES:
        assert (ROOT / module).is_file(), module
        assert one_worker_scope(f"{module}::test_a") == one_worker_scope(f"{module}::test_b[case]") == module


def test_other_tests_are_spread_one_by_one():
    assert one_worker_scope("tests/test_train.py::test_a") == "tests/test_train.py::test_a"
    assert one_worker_scope("tests/test_train.py::test_a") != one_worker_scope("tests/test_train.py::test_b")
