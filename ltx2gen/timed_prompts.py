"""`--prompt-at TIME:TEXT`: a clip that follows one prompt, then another from a time on. The clip renders in windows
that break at each change (`ltx2gen.continuation`), each window following one prompt."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.errors import ConfigError
from ltx2gen.image import TIME, nearest_latent_frame


@dataclass(frozen=True)
class PromptChange:
    """A `--prompt-at TIME:TEXT`: from TIME on (seconds, `2.5s` or `f60`; counted from the new segment's first
    frame with --extend) the clip follows TEXT."""

    text: str
    at: str
    prompt: str

    @classmethod
    def parse(cls, text: str) -> "PromptChange":
        at, colon, prompt = str(text).partition(":")
        if not colon or not TIME.fullmatch(at) or at == "end" or not prompt.strip():
            raise ConfigError(f"--prompt-at {text}: give TIME:TEXT, a time in seconds (8, 8.5s) or a frame (f192) "
                              "and the prompt from then on, e.g. --prompt-at \"8:the fox stops and looks up\"")
        return cls(str(text), at, prompt)

    def frame(self, fps: Fraction) -> int:
        """The frame TIME names, counted from the segment's first frame (seconds round to the nearest frame)."""
        return int(self.at[1:]) if self.at.startswith("f") else round(Fraction(self.at.rstrip("s")) * fps)


def prompt_breaks(changes: tuple[PromptChange, ...], num_frames: int, fps: Fraction,
                  first_new_frame: int = 0) -> tuple[int, ...]:
    """The latent frame each prompt change starts at: the one whose first frame (8k-7) is nearest the time (a
    change takes effect on a window's first new frame). Past the clip's last latent frame, or two changes at one
    latent frame: a ConfigError naming the change."""
    breaks, total = [], latent_frame_count(num_frames)
    for change in changes:
        frame = first_new_frame + change.frame(fps)
        latent = nearest_latent_frame(frame)
        where = f"--prompt-at {change.text}"
        if frame >= num_frames or latent >= total:
            raise ConfigError(f"{where}: frame {frame} is at or past the clip's last latent frame (the clip has "
                              f"{num_frames} frames, {float(num_frames / fps):g} s); give an earlier time")
        if first_new_frame == 0 and latent == 1:  # the first window would be frame 0 alone
            raise ConfigError(f"{where}: frame {frame} falls in the clip's first latent frame, which follows "
                              f"--prompt; give frame 6 ({float(6 / fps):.3g} s) or later, or this text as --prompt")
        if latent in breaks:
            raise ConfigError(f"{where}: falls on the same latent frame ({latent}, frames {8 * latent - 7}-"
                              f"{8 * latent}) as an earlier --prompt-at; changes need at least 8 frames between them")
        breaks.append(latent)
    if breaks != sorted(breaks):
        raise ConfigError("--prompt-at: give the changes in the order of their times")
    return tuple(breaks)


def opening_prompt_at(values: dict) -> dict:
    """A first --prompt-at at the segment's first frame (0, 0s, f0) gives the opening prompt: it is --prompt when
    there is none (a timeline of prompts), and refused beside one (both would be the first frames' prompt)."""
    changes = values["prompt_at"]
    if not changes or changes[0].frame(Fraction(1)) != 0 or changes[0].frame(Fraction(1000)) != 0:
        return values
    if values["prompt"] is not None:
        raise ConfigError(f"--prompt-at {changes[0].text}: the clip starts with --prompt; a change at 0 would replace "
                          "it from the first frame on: give that text as --prompt, or a later time")
    print(f"note: --prompt-at {changes[0].text} is the opening prompt (there is no --prompt)")
    return {**values, "prompt": changes[0].prompt, "prompt_at": changes[1:]}
