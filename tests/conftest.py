"""Fixtures shared by the tests (helpers they import are in tests/helpers.py)."""

from __future__ import annotations

import os

# make test runs two pytest-xdist workers on the 2 cores: one torch thread each, here and in
# every CLI subprocess (they inherit it); set before torch is imported (tests/helpers.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from maml_hydra.config import Config  # noqa: E402
from tests.helpers import make_config  # noqa: E402


@pytest.fixture
def tiny_cfg() -> Config:
    return make_config()


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
