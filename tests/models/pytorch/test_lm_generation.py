"""Generation rows of the model matrix: every architecture forge_fe.compile_lm supports, compiled into
prefill + decode programs over a static KV cache, generating 32 greedy tokens that must equal
transformers' generate(do_sample=False) (forge_fe.tools.matrix_builders.lm_generation). The full
generation tests (sampling, eos, batches, save/load, errors) are tests/test_generation.py."""
from forge_fe.generation.models import ARCHS
from forge_fe.tools import matrix
from forge_fe.tools.matrix_builders import lm_generation

CASES = [lm_generation(arch) for arch in sorted(ARCHS)]

test_push, test_data_format, test_nightly = matrix.pytest_tests(CASES)
