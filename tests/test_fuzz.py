"""Differential fuzzing: random ONNX graphs against onnxruntime, random torch modules against eager.

A case passes when forge_fe's outputs match the framework's within the dtype's tolerance, or
when forge_fe refuses the model with a ForgeError naming an op (tests/differential.py). The
default run tries a fixed, small number of examples, derandomized so CI repeats them exactly;
`pytest -m fuzz` runs the long budget (FORGE_FE_FUZZ_EXAMPLES per strategy, default 1000) with
fresh random examples. docs/reliability.md records what the long runs found.
"""
import os

import pytest
from hypothesis import HealthCheck, given, settings

import differential
from onnx_graph_strategy import onnx_graphs
from torch_module_strategy import torch_modules

LONG = int(os.environ.get("FORGE_FE_FUZZ_EXAMPLES", "1000"))
QUICK = dict(derandomize=True, database=None, deadline=None, print_blob=True,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
FUZZ = dict(QUICK, derandomize=False)


def check_onnx(case):
    model, feeds = case
    differential.onnx_case(model, feeds)


def check_torch(case):
    module, inputs = case
    differential.torch_case(module, inputs)


@settings(max_examples=30, **QUICK)
@given(onnx_graphs())
def test_random_onnx_graphs_match_onnxruntime(case):
    check_onnx(case)


@settings(max_examples=6, **QUICK)
@given(torch_modules())
def test_random_torch_modules_match_eager(case):
    check_torch(case)


@pytest.mark.fuzz
@pytest.mark.timeout(0)
@settings(max_examples=LONG, **FUZZ)
@given(onnx_graphs())
def test_fuzz_onnx_graphs_long(case):
    check_onnx(case)


@pytest.mark.fuzz
@pytest.mark.timeout(0)
@settings(max_examples=LONG, **FUZZ)
@given(torch_modules())
def test_fuzz_torch_modules_long(case):
    check_torch(case)
