"""ltx2gen: staged, memory-managed LTX-2 text-to-video-with-audio generation.

    from ltx2gen import GenerateConfig, build_parser, generate

    config = GenerateConfig.from_args(build_parser().parse_args(["--prompt", "A red fox in fresh snow"]))
    clip = generate(config)  # the MP4 at clip.output, its sidecar at clip.sidecar

Importing the package imports no torch: the configuration is validated first, and `generate` (ltx2gen.clip) loads
torch when it is first used.
"""

import logging
import re

from ltx2gen.torchvision_compat import prepare_on_import

prepare_on_import()  # torchvision (imported by transformers and spandrel) importable beside a CPU-only torch

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


__all__ = ["ClipFailed", "ConfigError", "GenerateConfig", "build_parser", "generate"]


def __getattr__(name: str):
    if name == "generate":
        from ltx2gen.clip import generate

        return generate
    if name in ("GenerateConfig", "build_parser"):
        from ltx2gen import config

        return getattr(config, name)
    if name in ("ClipFailed", "ConfigError"):
        from ltx2gen import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'ltx2gen' has no attribute {name!r}")
