import os

import numpy as np
import pytest
import torch

# Keep runs repeatable and within the CI machine's two cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


