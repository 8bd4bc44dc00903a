"""RIFE 4.22-4.26's IFNet (Practical-RIFE's flownet.pkl), written for this project: the frame between two frames.

Our own compact implementation rather than a package's (docs/postprocess.md says why): its parameter names are the
checkpoint's own, so a checkpoint loads by exact key match or is refused, never with keys silently dropped. The
number of flow blocks (4 in RIFE 4.22, 5 in 4.25 and 4.26) and each block's width are read from the checkpoint.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_CHANNELS = 4  # per frame, from the shared encoder (`Head`)
# Each block's output before the pixel shuffle: 4 flow channels (two 2-D flows), 1 mask, 8 feature channels, x4.
BLOCK_OUTPUTS = 4 * 13
FIRST_BLOCK_INPUTS = 3 + 3 + 2 * FEATURE_CHANNELS + 1  # both frames, both frames' features, the timestep
# Later blocks also see the mask, the 8 feature channels and the 4 flow channels of the blocks before them.
LATER_BLOCK_INPUTS = FIRST_BLOCK_INPUTS + 1 + 8 + 4
RESIDUAL_CONVS = 8
BLOCK_KEY = re.compile(r"block(\d+)\.conv0\.1\.0\.weight")


def conv_act(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class Head(nn.Module):
    """Per-frame features at full resolution, shared by both frames."""

    def __init__(self):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, FEATURE_CHANNELS, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        hidden = self.relu(self.cnn2(self.relu(self.cnn1(self.relu(self.cnn0(image))))))
        return self.cnn3(hidden)


class ResConv(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One refinement of the flow at 1/`scale` of the resolution: returns (flow change, mask logit, features)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.conv0 = nn.Sequential(conv_act(in_channels, width // 2, 2), conv_act(width // 2, width, 2))
        self.convblock = nn.Sequential(*(ResConv(width) for _ in range(RESIDUAL_CONVS)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, BLOCK_OUTPUTS, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`image` sampled at each pixel's position plus `flow` (in pixels), borders repeated."""
    batch, _, height, width = flow.shape
    ys = torch.linspace(-1.0, 1.0, height, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=flow.device, dtype=flow.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(batch, height, width, 2)
    step = torch.tensor([(width - 1) / 2, (height - 1) / 2], device=flow.device, dtype=flow.dtype)
    grid = grid + flow.permute(0, 2, 3, 1) / step
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """`widths`: each flow block's channels, coarsest first (RIFE 4.25/4.26: 192, 128, 96, 64, 32)."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        self.widths = tuple(widths)
        for index, width in enumerate(self.widths):
            self.add_module(f"block{index}", IFBlock(FIRST_BLOCK_INPUTS if index == 0 else LATER_BLOCK_INPUTS,
                                                     width))
        self.encode = Head()

    @property
    def multiple(self) -> int:
        """Frame sizes the network takes: the coarsest block works at 1/2^(blocks-1) and halves twice more."""
        return 2 ** (len(self.widths) - 1) * 4

    def forward(self, first: torch.Tensor, second: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The frame at `timestep` (shape [B, 1, 1, 1], 0 = `first`, 1 = `second`) between two [B, 3, H, W] frames in
        [0, 1]; H and W multiples of `multiple`."""
        time_plane = timestep.expand(-1, 1, *first.shape[2:]).to(first.dtype)
        features = self.encode(first), self.encode(second)
        warped = first, second
        flow = mask = feature = None
        for index in range(len(self.widths)):
            scale = 2.0 ** (len(self.widths) - 1 - index)
            block = getattr(self, f"block{index}")
            if flow is None:
                flow, mask, feature = block(torch.cat((first, second, *features, time_plane), 1), None, scale)
            else:
                warped_features = warp(features[0], flow[:, :2]), warp(features[1], flow[:, 2:4])
                inputs = torch.cat((*warped, *warped_features, time_plane, mask, feature), 1)
                change, mask, feature = block(inputs, flow, scale)
                flow = flow + change
            warped = warp(first, flow[:, :2]), warp(second, flow[:, 2:4])
        blend = torch.sigmoid(mask)
        return warped[0] * blend + warped[1] * (1 - blend)


def widths_in(state_dict: dict) -> tuple[int, ...]:
    """Each flow block's width, from a checkpoint's keys (empty where it has none)."""
    found = {int(match.group(1)): state_dict[key].shape[0] for key in state_dict
             if (match := BLOCK_KEY.fullmatch(key))}
    return tuple(found[index] for index in range(len(found))) if sorted(found) == list(range(len(found))) else ()


# Parts of the training network the released checkpoints carry and inference never runs: the distillation
# teacher's flow block and the timestep calibration layers. Named here so that nothing else is ever left out.
TRAINING_ONLY = ("teacher.", "caltime.")


def inference_weights(state_dict: dict) -> dict:
    """A checkpoint's inference weights: the `module.` prefix of a DataParallel save removed, the training-only
    parts (`TRAINING_ONLY`) left out. Every other key must then match the network exactly (`mismatch`)."""
    unprefixed = {key.removeprefix("module."): value for key, value in state_dict.items()}
    return {key: value for key, value in unprefixed.items() if not key.startswith(TRAINING_ONLY)}


def mismatch(model: IFNet, state_dict: dict) -> str:
    """What keeps `state_dict` from loading into `model` exactly ('' when nothing): missing or unexpected keys, or
    a tensor of another shape."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        return (f"{len(missing)} keys missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                f"(e.g. {unexpected[:2]})")
    for key, tensor in expected.items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            return f"{key} is {tuple(state_dict[key].shape)}, the network's is {tuple(tensor.shape)}"
    return ""
