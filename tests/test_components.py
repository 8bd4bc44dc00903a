"""Loading components: the byte ranges of the decoders' weights."""

from ltx2gen.components import decoder_weight_ranges
from ltx2gen.weights import stored_tensors


def test_the_decoders_ranges_are_the_video_decoder_and_the_audio_files(tiny_model):
    ranges = decoder_weight_ranges(tiny_model)
    decoder_bytes = sum(tensor.nbytes for tensor in stored_tensors(tiny_model / "vae")
                        if not tensor.name.startswith("encoder."))
    vae_file = next((tiny_model / "vae").glob("*.safetensors"))
    assert 0 < sum(length for file, _, length in ranges if file == vae_file) == decoder_bytes < vae_file.stat().st_size
    whole_files = {file.parent.name for file, offset, length in ranges if (offset, length) == (0, 0)}
    assert whole_files == {"audio_vae", "vocoder"}
