"""ltx2gen: staged, memory-managed LTX-2 text-to-video-with-audio generation."""

import logging

# torchao logs a warning for each optional CUDA kernel library it cannot load on the machine at hand, and torch for
# each enum torchao registers: noise on every run that says nothing about the run.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
