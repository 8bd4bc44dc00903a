"""One clip's stage sequence: the table of contents of a run, shared by generate.py, `--batch` and recovery.

Peak memory is the largest single stage, never the sum of the models: each stage loads its models, uses them and
frees them before the next one starts (`memory.MemoryTracker.run`). The latents are on disk as soon as diffusion
ends, so no later failure loses the diffusion work.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ltx2gen import (
    context_parallel,
    continuation,
    dfr,
    dfr_passes,
    diffusion,
    duration,
    latents,
    postprocess,
    report,
    two_stage,
)
from ltx2gen import memory as mem
from ltx2gen.audio_decode import decode_audio
from ltx2gen.checkpoint import latent_frame_count
from ltx2gen.components import default_dtype, release_page_cache
from ltx2gen.conditioners import CONDITIONERS, conditions_for, encode_all
from ltx2gen.config import GenerateConfig
from ltx2gen.errors import STOPPED_BEFORE_DIFFUSION, ClipFailed
from ltx2gen.files import write_json
from ltx2gen.plan import RunPlan
from ltx2gen.postprocess_options import PostprocessOptions
from ltx2gen.ranks import Ranks
from ltx2gen.signals import interrupts_deferred
from ltx2gen.text import EncodedPrompt, PromptRequest, TextConditioning, encode_prompts
from ltx2gen.video import VideoFormat, write_mp4
from ltx2gen.video_decode import DecodePlan, decode_video


@dataclass
class RenderedClip:
    """A finished clip: the MP4, its sidecar, the latents file where it was kept, the memory tracker that timed
    each stage, and what the decode wrote (its frames the model's choice with --num-frames auto, doubled by dfr's
    temporal rounds)."""

    output: Path
    sidecar: Path
    latents: Path | None
    tracker: mem.MemoryTracker
    seconds: float
    video_format: VideoFormat

    @property
    def num_frames(self) -> int:
        return self.video_format.num_frames

    def summary(self, config: GenerateConfig) -> str:
        """The run's last line: where the clip is (after any post-processing) and how long each stage took."""
        final = config.postprocessed(self.video_format)
        return report.summary_line(config.output, final.num_frames, width=final.width, height=final.height,
                                   fps=final.fps, tracker=self.tracker, total_seconds=self.seconds)


@dataclass
class Work:
    """One clip on its way through the stages: the resolved clip, then what each stage leaves for the next."""

    plan: RunPlan
    conditioning: TextConditioning | None = None  # --prompt's
    later_prompts: list[TextConditioning] = field(default_factory=list)  # each --prompt-at's
    encoded: dict = field(default_factory=dict)  # what each of its conditioners encoded, by name
    diffusion: diffusion.DiffusionResult | None = None
    latents_path: Path | None = None

    @property
    def config(self) -> GenerateConfig:
        """The clip's settings (with --num-frames auto, at the length chosen once the duration stage has run)."""
        return self.plan.settings


def prepare(tracker: mem.MemoryTracker, works: list[Work], cache=None) -> None:
    """The stages before diffusion, for clips that share their models (one clip, or a group of a batch): 1. the text
    encoder once for every prompt (from the embedding `cache` where it has them), each clip's conditioning left on the
    host so that one at a time is on the GPU; 1a. with --num-frames auto, the duration head chooses each length;
    1b. each conditioner's stage (`ltx2gen.conditioners`). Each stage frees its models before the next."""
    first = works[0].plan
    requests = [PromptRequest.for_clip_prompts(work.config, work.plan.prompt_enhancer) for work in works]
    conditionings = iter(tracker.run("text", encode_prompts, first.model_dir, sum(requests, []), first.device,
                                     first.dtype, loras=first.loras, cache=cache, text_encoder=first.text_encoder))
    for work, asked in zip(works, requests):
        work.conditioning, *work.later_prompts = [next(conditionings).to("cpu") for _ in asked]
    del conditionings
    choosing = [work for work in works if work.plan.auto_length]
    if choosing:
        lengths = tracker.run("duration", duration.choose_lengths, first.model_dir,
                              [(work.conditioning, work.plan.auto_length) for work in choosing], device=first.device,
                              dtype=first.dtype)
        for work, chosen in zip(choosing, lengths):
            work.plan = work.plan.with_chosen_length(chosen)
    encoded = encode_all(tracker, first.model_dir, [work.plan.conditioners for work in works], device=first.device,
                         dtype=first.dtype)
    for work, inputs in zip(works, encoded):
        work.encoded = inputs


def generate(config: GenerateConfig, plan: RunPlan | None = None, ranks: Ranks | None = None) -> RenderedClip | None:
    """Generate one clip from a validated `GenerateConfig` (`GenerateConfig.from_args`): the library's entry point.
    `plan` defaults to `RunPlan.choose(config)`; under torchrun, `ranks` splits the clip over every rank's GPU and
    rank 0 alone writes it (the others return None). Raises `ClipFailed` with recovery advice."""
    ranks = ranks or Ranks()
    plan = plan or RunPlan.choose(config)
    started = time.perf_counter()
    tracker = mem.MemoryTracker(plan.device)
    diffused = False
    try:
        if ranks.distributed:  # rank 0's seed and output name for all
            context_parallel.join(plan.device)
            config = context_parallel.from_rank_zero(config if ranks.rank == 0 else None, plan.device)
            plan = dataclasses.replace(plan, settings=config)
        # 0. Where the host has the memory for it (a discrete GPU), the transformer's files are read into the page cache
        # while the stages before diffusion run.
        plan.read_ahead_transformer()
        # 1-1b. Text (on rank 0 only: the others receive its conditioning), the length with --num-frames auto, and
        # each conditioning input (`prepare`); each stage's models are freed before the next.
        work = Work(plan)
        if ranks.rank == 0:
            prepare(tracker, [work])
        config, plan = work.config, work.plan
        encoded = work.conditioning.encoded if work.conditioning else EncodedPrompt()  # the enhanced one, if asked
        # 2. Diffusion: denoised video and audio latents (each rank computes its share of the video tokens).
        # The transformer is freed.
        result = tracker.run("diffusion", diffuse, work, world_size=ranks.world_size)
        del work
        latents.check_finite(result.video_latents, result.audio_latents, "the diffusion's latents")
        diffused = True
    except (Exception, KeyboardInterrupt) as err:
        kept = two_stage.failure_advice(plan) or dfr_passes.failure_advice(plan) or continuation.failure_advice(config)
        raise ClipFailed(err, kept or nothing_kept_advice(err), foreseen=isinstance(err, latents.NonFiniteLatents),
                         rerun=not kept and isinstance(err, KeyboardInterrupt)) from err
    finally:
        if ranks.distributed:
            context_parallel.leave(finished=diffused)
    if ranks.rank != 0:  # rank 0 alone writes the clip
        return None
    # 3. Latents on disk, atomically: from here on no failure loses the diffusion work.
    latents_path = save_latents(plan, result)
    # 4-5. Audio (audio VAE + vocoder, or the --audio input), then the video decode streamed into the MP4; the
    # sidecar. Each model is freed.
    rendered = finish(tracker, plan, result, latents_path=latents_path, encoded=encoded)
    # 6. Cleanup: every model is gone and the video is on disk; evict the weights from the page cache.
    release_page_cache(plan.model_dir, config.drop_page_cache)
    rendered.seconds = time.perf_counter() - started
    return rendered


def nothing_kept_advice(cause: BaseException) -> str:
    """What to do after a failure before anything was saved."""
    if isinstance(cause, KeyboardInterrupt):
        return STOPPED_BEFORE_DIFFUSION
    if isinstance(cause, latents.NonFiniteLatents):
        return ("nothing was saved: the diffusion diverged; lower the guidance scales (--guidance-scale, "
                "--audio-guidance-scale, --stg-scale, --modality-scale, --nag-scale) and run the command again")
    return "nothing was saved; fix the cause and run the same command again"


def diffuse(stage: mem.Stage, work: Work, world_size: int = 1) -> diffusion.DiffusionResult:
    """Stage 2 for one clip: load the transformer, then denoise. With `world_size` > 1, every rank loads it while
    rank 0 encodes the prompt, and each computes its share of the video tokens."""
    denoiser = work.plan.load_denoiser(stage)
    if world_size > 1:
        work.conditioning = diffusion.split_over_ranks(denoiser, work.conditioning, world_size)
    return diffuse_with(stage, denoiser, work)


def diffuse_with(stage: mem.Stage, denoiser: diffusion.Denoiser, work: Work) -> diffusion.DiffusionResult:
    """Stage 2 with a loaded transformer (a batch shares one among its clips): the two-stage recipe, a clip in
    windows (each with the conditioning of its prompt), or one denoising run."""
    config, plan = work.config, work.plan
    if config.pipeline == "two-stage":
        return two_stage.diffuse(stage, denoiser, plan, work.conditioning)
    if config.pipeline == "dfr":
        return dfr.diffuse(stage, denoiser, plan, work.conditioning)
    if plan.windows:
        return continuation.diffuse(denoiser, plan, [work.conditioning, *work.later_prompts], work.encoded,
                                    plan.latents_metadata())
    return diffusion.run_denoiser(denoiser, work.conditioning, plan.call, config.seed, nag_settings=plan.nag,
                                  conditions=conditions_for(plan.conditioners, work.encoded))


def save_latents(plan: RunPlan, result: diffusion.DiffusionResult) -> Path:
    """Stage 3: the latents file, with everything decode_latents.py needs, beside the output. Where it cannot be
    written there (a full disk, a folder that became read-only), it goes to the first fallback folder that takes it
    (`latents.fallback_paths`), said in one line. Ctrl-C or SIGTERM during the save takes effect once the file is
    whole. Raises `ClipFailed` (with the recovery command when the file was saved)."""
    config = plan.settings
    metadata = {**plan.latents_metadata(), "windows": result.windows}
    try:
        with interrupts_deferred():
            saved, tried = latents.save_anywhere(config.latents_path, result.video_latents, result.audio_latents,
                                                 metadata)
    except KeyboardInterrupt as err:  # after the save: the file is whole
        raise ClipFailed(err, "the latents are kept; recover the clip with:\n  "
                         + report.recovery_command(saved, config.output)) from err
    except OSError as err:
        raise ClipFailed(err, "the diffusion result could not be saved anywhere; free some space (or choose an "
                         "--output folder that can be written) and run the same command again", foreseen=True) from err
    print(f"saved latents: {saved}" + (" (its folder beside the output could not take it)" if tried else ""),
          flush=True)
    return saved


def finish(tracker: mem.MemoryTracker, plan: RunPlan, result: diffusion.DiffusionResult,
           *, latents_path: Path, encoded: EncodedPrompt) -> RenderedClip:
    """Stages 4-5 from saved latents: decode into the MP4 and write the sidecar, then drop what is no longer
    needed (the latents unless kept, a two-stage run's stage-one latents). Raises `ClipFailed` with the recovery
    command; the latents file is kept then."""
    config = plan.settings
    try:
        sample_rate = decode(tracker, plan.model_dir, (result.video_latents, result.audio_latents),
                             postprocess.decode_target(config, config.output), config.video_format,
                             decode_plan=plan.decode_plan, device=plan.device, soundtrack=plan.soundtrack())
        postprocess.after_decode(tracker, config, config.output, config.video_format, plan.device)
        sidecar = plan.write_sidecar(result, tracker, sample_rate=sample_rate, latents_path=latents_path,
                                     encoded=encoded, later_stages=postprocess.record(config, tracker.timings()))
    except (Exception, KeyboardInterrupt) as err:
        raise ClipFailed(err, "the latents are kept; recover the clip with:\n  "
                         + report.recovery_command(latents_path, config.output)
                         + postprocess.redo_advice(config, config.output)) from err
    if not config.keep_latents:
        latents_path.unlink()
    two_stage.discard_stage_one(config)
    dfr_passes.discard_passes(config)
    return RenderedClip(config.output, sidecar, latents_path if config.keep_latents else None, tracker, 0.0,
                        config.video_format)


def recover(source: Path, output: Path, *, model_dir: Path, device: torch.device, decode_plan: DecodePlan,
            drop_page_cache: bool = False, post: PostprocessOptions = PostprocessOptions()) -> RenderedClip:
    """Stages 4-6 from a latents file alone (decode_latents.py, a batch resuming a clip): a clip made with --audio
    gets its input audio again, if that file is unchanged. The sidecar records the latents file's settings and
    where the clip was recovered from. The latents file is left as it is."""
    started = time.perf_counter()
    latents_file = latents.load_latents(source)
    meta, video_format = latents_file.metadata, latents_file.video_format
    tracker = mem.MemoryTracker(device)
    soundtrack = next((track for kind in CONDITIONERS if (track := kind.recovered_soundtrack(
        meta, video_format, meta.get("sample_rate"))) is not None), None)
    sample_rate = decode(tracker, model_dir, (latents_file.video, latents_file.audio),
                         postprocess.decode_target(post, output), video_format, decode_plan=decode_plan, device=device,
                         soundtrack=soundtrack)
    postprocess.after_decode(tracker, post, output, video_format, device)
    release_page_cache(model_dir, drop_page_cache)
    sidecar = write_json(output.with_suffix(".json"), {
        **meta, "output": str(output), "created": report.timestamp(), "recovered_from": str(source),
        "model_dir": str(model_dir), "device": str(device), "audio_sample_rate": sample_rate,
        "vae_decode": decode_plan.describe(latent_frame_count(video_format.num_frames)),
        "decoder": decode_plan.decoder, "video_decoder": decode_plan.record(),
        **postprocess.record(post, tracker.timings()), "stage_seconds": tracker.timings(),
        "stages": report.stage_reports(tracker), "versions": report.versions()})
    return RenderedClip(output, sidecar, source, tracker, time.perf_counter() - started, video_format)


def decode(tracker: mem.MemoryTracker, model_dir: Path, clip_latents: tuple[torch.Tensor, torch.Tensor | None],
           output: Path, video_format: VideoFormat, *, decode_plan: DecodePlan, device: torch.device,
           soundtrack: tuple[np.ndarray, int] | None = None) -> int | None:
    """Stages 4 and 5, shared by generation and recovery: the audio waveform (audio VAE and vocoder, each freed),
    then the video decode streamed into `output` (the VAE freed). Returns the audio sample rate (None without
    audio). A `soundtrack` (waveform, rate), the --audio input, replaces the audio decode."""
    video_latents, audio_latents = clip_latents
    dtype = default_dtype(device)
    waveform, sample_rate = soundtrack or (None, None)
    if audio_latents is not None and soundtrack is None:
        waveform, sample_rate = tracker.run("audio", decode_audio, model_dir, audio_latents, device=device, dtype=dtype)

    def write(frames):
        return write_mp4(output, frames, width=video_format.width, height=video_format.height,
                         num_frames=video_format.num_frames, fps=video_format.fps, audio=waveform,
                         sample_rate=sample_rate)

    tracker.run("video", decode_video, model_dir, video_latents, decode_plan, write=write, device=device, dtype=dtype)
    return sample_rate
