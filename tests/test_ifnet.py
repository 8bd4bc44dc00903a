import pytest
import torch

from ltx2gen.ifnet import IFNet, inference_weights, mismatch, widths_in
from ltx2gen.postprocess_models import read_state_dict
from tests.tiny_postprocess import real_rife


def square_at(left: int, height: int = 64, width: int = 128) -> torch.Tensor:
    frame = torch.zeros(1, 3, height, width)
    frame[:, :, 24:40, left:left + 16] = 1.0
    return frame


def test_real_rife_checkpoint_puts_a_moving_square_where_it_is_at_each_time():
    weights = inference_weights(read_state_dict(real_rife(), "--interpolate-model"))
    network = IFNet(widths_in(weights))
    assert network.widths == (192, 128, 96, 64, 32) and mismatch(network, weights) == ""
    network.load_state_dict(weights)
    network.eval()
    with torch.inference_mode():
        for time, expected_left in ((0.25, 24), (0.5, 32), (0.75, 40)):
            frame = network(square_at(16), square_at(48), torch.full((1, 1, 1, 1), time))
            columns = (frame[0].mean(0)[32] > 0.5).nonzero().flatten()
            assert abs(columns.min().item() - expected_left) <= 1, (time, columns)
            assert abs(columns.max().item() - (expected_left + 15)) <= 1, (time, columns)


def test_checkpoint_keys_load_exactly_or_are_named():
    weights = {f"module.{key}": value for key, value in IFNet((16, 8)).state_dict().items()}
    weights["teacher.lastconv.0.bias"] = torch.zeros(1)  # training only: left out by name
    clean = inference_weights(weights)
    assert widths_in(clean) == (16, 8) and mismatch(IFNet((16, 8)), clean) == ""
    clean["block1.extra.weight"] = torch.zeros(1)
    assert "1 unexpected" in mismatch(IFNet((16, 8)), clean)
    del clean["block1.extra.weight"], clean["encode.cnn0.bias"]
    assert "1 keys missing" in mismatch(IFNet((16, 8)), clean)


@pytest.mark.parametrize("widths", [(16, 8), (32, 16, 8, 8)])
def test_any_frame_size_of_the_networks_multiple_keeps_its_size(widths):
    network = IFNet(widths).eval()
    first = torch.rand(2, 3, network.multiple, 2 * network.multiple)
    with torch.inference_mode():
        assert network(first, first, torch.full((2, 1, 1, 1), 0.5)).shape == first.shape
