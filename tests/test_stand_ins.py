import pytest
import torch

from ltx2gen.components import component_class, load_component
from ltx2gen.stand_ins import ConnectorOutputs, LatentStatistics


@pytest.mark.parametrize("name", ["vae", "audio_vae"])
def test_latent_statistics_match_the_real_vae_without_its_weights(tiny_model, name):
    real = load_component(tiny_model, name, torch.device("cpu"), torch.float32)
    stats = LatentStatistics.load(component_class(tiny_model, name), tiny_model / name, torch.device("cpu"))
    assert torch.equal(stats.latents_mean, real.latents_mean) and torch.equal(stats.latents_std, real.latents_std)
    assert dict(stats.config) == {k: v for k, v in real.config.items() if k != "_name_or_path"}
    for attribute in ("spatial_compression_ratio", "temporal_compression_ratio", "mel_compression_ratio"):
        assert getattr(stats, attribute, None) == getattr(real, attribute, None)
    assert sum(p.numel() for p in stats.parameters()) == 0 and stats.device == torch.device("cpu")


def test_connector_outputs_refuse_a_batch_they_were_not_computed_for():
    outputs = ConnectorOutputs(torch.zeros(2, 4, 8), torch.zeros(2, 4, 6), torch.ones(2, 4))
    video, audio, mask = outputs(torch.zeros(2, 4, 3), torch.ones(2, 4))
    assert video.shape == (2, 4, 8) and audio.shape == (2, 4, 6) and mask.shape == (2, 4)
    with pytest.raises(ValueError, match="batch of 2"):
        outputs(torch.zeros(1, 4, 3), torch.ones(1, 4))
