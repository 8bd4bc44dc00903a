import pytest
import torch

from ltx2gen import postprocess_models
from ltx2gen.errors import ConfigError
from tests.tiny_postprocess import save, upscalers, write_tiny_rife, write_upscaler


@pytest.mark.parametrize("name", sorted(upscalers()))
def test_each_supported_layout_is_recognised_and_upscales_by_its_factor(tmp_path, name):
    module, scale, suffix, params_ema = upscalers()[name]
    path = save(module, tmp_path / f"{name}{suffix}", params_ema)
    model = postprocess_models.check_upscaler(path, scale)
    assert model.scale == scale and model.record()["sha256"] and model.architecture
    upscaler = postprocess_models.load_upscaler(path, torch.device("cpu"))
    assert upscaler(torch.rand(2, 3, 12, 20)).shape == (2, 3, 12 * scale, 20 * scale)


def test_a_factor_the_model_does_not_do_is_refused(tmp_path):
    path = write_upscaler(tmp_path, "esrgan_x4")
    with pytest.raises(ConfigError, match=r"ESRGAN x4 model, which does not upscale x2; give --upscale 4"):
        postprocess_models.check_upscaler(path, 2)


def test_bad_files_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        postprocess_models.check_upscaler(tmp_path / "missing.pth", 2)
    (tmp_path / "text.pth").write_text("not a model")
    with pytest.raises(ConfigError, match="not a plain state dict"):
        postprocess_models.check_upscaler(tmp_path / "text.pth", 2)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole_module.pth")  # a pickled object, not a state dict
    with pytest.raises(ConfigError, match="not a plain state dict of tensors \\(read with weights_only=True"):
        postprocess_models.check_upscaler(tmp_path / "whole_module.pth", 2)
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "unknown.pth")
    with pytest.raises(ConfigError, match="not an architecture spandrel recognises"):
        postprocess_models.check_upscaler(tmp_path / "unknown.pth", 2)
    with pytest.raises(ConfigError, match="no flow blocks"):
        postprocess_models.check_interpolator(write_upscaler(tmp_path))


def test_rife_checkpoints_load_exactly_or_are_refused(tmp_path):
    path = write_tiny_rife(tmp_path)
    assert postprocess_models.check_interpolator(path).architecture == "RIFE IFNet (2 blocks)"
    network = postprocess_models.load_interpolator(path, torch.device("cpu"))
    assert not network.training and network.widths == (16, 8)
    weights = torch.load(path, weights_only=True)
    weights["module.block0.unknown.weight"] = torch.zeros(1)
    torch.save(weights, path)
    with pytest.raises(ConfigError, match="not the RIFE 4.22-4.26 layout \\(0 keys missing .*1 unexpected"):
        postprocess_models.check_interpolator(path)
