"""ltx2gen: staged, memory-managed LTX-2 text-to-video-with-audio generation."""

import logging
import re

# Library notices that say nothing about a run of this product, each dropped by its text at the logger that emits
# it; anything else those loggers say still shows.
KNOWN_NOISE = {
    # torchao's optional CUDA kernel libraries, one line each where they cannot load (a CPU-only torch)
    "torchao": r"^Failed to load .*torchao/_C",
    # each enum torchao registers with torch.compile
    "torch.utils._pytree": r"is an Enum subclass and is now natively supported",
    # diffusers looks for torchao classes that torchao 0.18 moved; they matter only for reading torchao-pickled
    # checkpoints, and this product reads safetensors only
    "diffusers.quantizers.torchao.torchao_quantizer": r"^Unable to import `torchao` Tensor objects",
}
for _name, _pattern in KNOWN_NOISE.items():
    logging.getLogger(_name).addFilter(
        lambda record, pattern=re.compile(_pattern): not pattern.search(record.getMessage()))
