"""Where tensors go: the GPU of this process when there is one, else the CPU."""

from __future__ import annotations

import torch


def default_device(local_rank: int = 0) -> torch.device:
    """``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
