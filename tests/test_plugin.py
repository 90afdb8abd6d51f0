"""The pytest plugin: .deriv files as tests (one item per chain), readable symnet failures."""

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

#: The plugin is found through the pytest11 entry point once symnet is installed;
#: name it explicitly when it is not (a checkout used without installing).
_REGISTERED = any(ep.value == "symnet.testing.pytest_plugin" for ep in entry_points(group="pytest11"))
PLUGIN_ARGS = () if _REGISTERED else ("-p", "symnet.testing.pytest_plugin")

GOOD = """\
# Two linear layers
matrix x: 1x3, W1: 3x4, b1: 1x4, W2: 4x2, b2: 1x2
define h = x*W1 + b1

# collapse
  h*W2 + b2
= (x*W1 + b1)*W2 + b2
= x*W1*W2 + b1*W2 + b2

# transpose
(W1*W2).T = W2.T*W1.T
"""

BAD = GOOD + """
# a dropped bias
  h*W2 + b2
= x*W1*W2 + b2
"""


def run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *PLUGIN_ARGS, *args)


def test_the_entry_point_is_registered():
    assert _REGISTERED, "pip install -e . registers symnet.testing.pytest_plugin under pytest11"


def test_deriv_files_named_like_tests_are_collected_one_item_per_chain(pytester):
    pytester.makefile(".deriv", test_layers=GOOD, layers_test=GOOD, notes=BAD)
    result = run(pytester, "--collect-only", "-q")
    out = result.stdout.str()
    assert "test_layers.deriv::line_6" in out and "test_layers.deriv::line_11" in out
    assert "layers_test.deriv::line_6" in out
    assert "notes.deriv" not in out  # not a test file name: not collected
    result.assert_outcomes()  # nothing ran
    assert "4 tests collected" in out


def test_proved_chains_pass_and_a_refuted_chain_fails_with_the_compiler_style_report(pytester):
    pytester.makefile(".deriv", test_layers=BAD)
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "test_layers.deriv:15: step refuted: the sides differ by" in out
    assert "  15 | = x*W1*W2 + b2" in out
    assert "(checked against the expression on line 14)" in out
    assert "counterexample:" in out and "left side" in out
    assert "test_layers.deriv: chain at line 14 (a dropped bias): 1 refuted (of 1 step)" in out
    assert "FAILED test_layers.deriv::line_14 - test_layers.deriv:15: step" in out
    assert "Traceback" not in out and "symnet/kernel.py" not in out and "symnet/notes/checkfile.py" not in out


def test_an_unproved_step_fails_too(pytester):
    pytester.makefile(".deriv", test_relu="scalar a, b\nlog(a*b) = log(a) + log(b)\n")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert "test_relu.deriv:2: step unproved" in result.stdout.str()


def test_a_malformed_file_is_one_failing_item_with_its_location(pytester):
    pytester.makefile(".deriv", test_bad="matrix x: 1x3, W: 4x4\n  x\n= x*W\n")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "test_bad.deriv::malformed" in out
    assert "test_bad.deriv:3:3: error: shapes 1x3 and 4x4 cannot be multiplied" in out
    assert "test_bad.deriv: malformed, not checked" in out
    assert "Traceback" not in out


def test_binary_garbage_is_a_clean_failure(pytester):
    (pytester.path / "test_garbage.deriv").write_bytes(b"\x00\xff\xfe garbage \x80\x81")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert "not UTF-8 text" in result.stdout.str() and "Traceback" not in result.stdout.str()


def test_the_file_patterns_are_configurable_and_can_turn_collection_off(pytester):
    pytester.makefile(".deriv", test_layers=GOOD, proof_layers=GOOD)
    pytester.makeini("[pytest]\nsymnet_deriv_files = proof_*.deriv\n")
    result = run(pytester, "--collect-only", "-q")
    assert "proof_layers.deriv::line_6" in result.stdout.str()
    assert "test_layers.deriv" not in result.stdout.str()
    pytester.makeini("[pytest]\nsymnet_deriv_files =\n")
    result = run(pytester, "--collect-only", "-q")
    assert ".deriv" not in result.stdout.str()


def test_a_deriv_file_named_on_the_command_line_is_always_collected(pytester):
    path = pytester.makefile(".deriv", notes=GOOD)
    result = run(pytester, str(path))
    result.assert_outcomes(passed=2)


def test_markdown_blocks_are_collected_only_when_asked(pytester):
    md = "# Notes\n\n```symnet\nmatrix A: 2x2, B: 2x2\n```\n\ntext\n\n```symnet\n(A*B).T = A.T*B.T\n```\n"
    pytester.makefile(".md", notes=md, plain="# nothing to check\n\n```python\nprint(1)\n```\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result = run(pytester, "--symnet-markdown")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "notes.md:10: step refuted" in out  # line numbers of the Markdown file
    assert "plain.md" not in out
    pytester.makeini("[pytest]\nsymnet_markdown = true\n")
    result = run(pytester)
    result.assert_outcomes(failed=1)


def test_chains_can_be_selected_by_line(pytester):
    pytester.makefile(".deriv", test_layers=BAD)
    result = run(pytester, "-k", "line_11")
    result.assert_outcomes(passed=1, deselected=2)


def test_trials_and_seed_options(pytester):
    pytester.makefile(".deriv", test_layers=GOOD)
    result = run(pytester, "--symnet-trials", "1", "--symnet-seed", "7", "-v")
    result.assert_outcomes(passed=2)
    assert "symnet: .deriv tests: test_*.deriv, *_test.deriv" in result.stdout.str()


HELPERS = """
from hypothesis import Phase, given, settings
from symnet import Network
from symnet.testing.strategies import networks
from symnet.testing import assert_collapses, assert_derivation


def test_true_claim():
    assert_collapses(Network.dense([3, 4, 2]))


def test_false_claim():
    net = Network.dense([3, 4, 2], ["relu", "identity"])
    assert_collapses(net)


def test_false_derivation():
    assert_derivation("matrix A: 2x2, B: 2x2\\n  (A*B).T\\n= A.T*B.T\\n")


@settings(max_examples=20, derandomize=True, database=None, phases=[Phase.generate, Phase.shrink])
@given(networks(max_depth=2))
def test_property(net):
    assert_collapses(net)
"""


def test_helper_failures_show_the_call_and_the_report_without_symnet_frames(pytester):
    pytester.makepyfile(test_user=HELPERS)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=3)
    out = result.stdout.str()
    assert "test_user.py:13: in test_false_claim" in out
    assert "    assert_collapses(net)" in out
    assert "\nNetwork.dense([3,4,2], [relu,identity]) does not collapse: nonlinear layer 1 (relu)" in out
    assert "witness (confirmed at 50 digits)" in out
    assert "<string>:3: step refuted" in out and "  3 | = A.T*B.T" in out
    assert "symnet/testing/assertions.py" not in out and "symnet/networks/collapse.py" not in out
    assert "E   " not in out  # the report is printed as is, not as an exception dump
    # the shrunk example Hypothesis found is shown too
    # ("Falsifying example" before Hypothesis 6.16x, "Failing test case" after)
    assert "Falsifying example: test_property(" in out or "Failing test case: test_property(" in out
    assert "net=Network.dense([1,1], [tanh])," in out
    assert "FAILED test_user.py::test_false_claim - SymnetAssertionError: Network.dense(" in out


def test_other_traceback_styles_are_left_to_pytest(pytester):
    pytester.makepyfile(test_user=HELPERS)
    result = run(pytester, "--tb=native", "-k", "test_false_claim")
    result.assert_outcomes(failed=1, deselected=3)
    assert "SymnetAssertionError" in result.stdout.str()
    result = run(pytester, "--tb=line", "-k", "test_false_claim")
    assert "does not collapse" in result.stdout.str()


def test_this_repositorys_example_files_are_not_collected():
    # tests/deriv/ holds deliberately false and malformed files for other tests
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/deriv"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, proc.stdout + proc.stderr
