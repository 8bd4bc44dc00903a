"""`generate.py --batch`: the whole batch in this process. Each prompt is encoded once (or read from the embedding
cache), the transformer is loaded once for all the clips that share it, and each clip is decoded as soon as the
memory plan allows (`decode_order`): right after its diffusion, or after its group's; latents are saved as soon as
each clip is diffused. Each clip's `[i/N]` line is printed when its work ends (`batch_progress`). The batch file,
its rows and summary are `ltx2gen.batch`'s."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ltx2gen.batch import (
    Row,
    Summary,
    contact_sheet,
    exit_status,
    plan_clip,
    save_previews,
    say_rendered_again,
    skip_if_finished,
    unfinished,
)
from ltx2gen.batch_lines import Clip, read_batch
from ltx2gen.batch_progress import BatchProgress, PlanningLines
from ltx2gen.clip import Work, prepare
from ltx2gen.errors import ConfigError
from ltx2gen.flag_values import ensure_writable_dir
from ltx2gen.lock import lock_batch_folder

if TYPE_CHECKING:
    from ltx2gen.memory import MemoryTracker


def run_in_process(batch_file: Path, out_dir: Path, cache_dir: Path | None) -> int:
    """Render the whole batch in this process: each prompt is encoded once (or read from the embedding cache),
    the transformer is loaded once per model/LoRA/FP8 combination for all its clips, then each clip is decoded.
    Latents are saved as soon as each clip is diffused, so a failure later loses only that clip's decode.
    Under torchrun, this process renders only its rank's share (`ltx2gen.ranks`)."""
    from ltx2gen.ranks import Ranks

    ranks = Ranks.from_env()
    clips = read_batch(batch_file)
    out_dir = Path(out_dir)
    with contextlib.suppress(OSError):  # first, so that no rank removes a probe folder another rank writes in
        out_dir.mkdir(parents=True, exist_ok=True)
    ensure_writable_dir(out_dir, "--out")  # says why where the folder could not be made
    with lock_batch_folder(out_dir, ranks.rank):
        return _render_in_process(clips, out_dir, cache_dir, ranks)


def _render_in_process(clips: list[Clip], out_dir: Path, cache_dir: Path | None, ranks) -> int:
    from ltx2gen import text

    my_clips = ranks.share(clips)
    if ranks.distributed:
        ranks.join()
        print(f"rank {ranks.rank} of {ranks.world_size}: {len(my_clips)} of the batch's {len(clips)} clips "
              f"(process {os.getpid()})", flush=True)  # the process to look at, or to stop, on this host
    summary = Summary(out_dir)
    progress = BatchProgress(summary, len(my_clips))
    cache = text.EmbeddingCache(cache_dir) if cache_dir else None
    with contextlib.ExitStack() as reservations:  # each clip's output name is the batch's until it ends
        return _render_jobs(_plan_jobs(my_clips, out_dir, progress, reservations), my_clips, clips, progress, cache,
                            ranks)


def _render_jobs(jobs: list[_Job], my_clips: list[Clip], clips: list[Clip], progress: BatchProgress, cache,
                 ranks) -> int:
    from ltx2gen import components
    from ltx2gen.ranks import Ranks

    summary = progress.summary
    out_dir = summary.out_dir
    groups: dict[tuple, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.shared_models_key(), []).append(job)
    try:
        for group in groups.values():
            _render_group(group, cache, progress)
            if not Ranks.share_the_page_cache():  # otherwise each rank evicts once all ranks are done, below
                components.release_page_cache(group[0].plan.model_dir, drop_system_cache=False)
    except KeyboardInterrupt:
        print("interrupted: stopping after writing the summary", flush=True)
        for row, clip in zip(summary.rows, my_clips):
            if row.status == "pending":
                row.status, row.detail = "interrupted", unfinished(out_dir, clip)
                progress.ended(row)
    if ranks.distributed:
        summary.write(f"summary.rank{ranks.rank}")
        ranks.wait_for_all()
        if Ranks.share_the_page_cache():  # every rank of the host has finished loading
            for model_dir in {job.plan.model_dir for job in jobs}:
                components.release_page_cache(model_dir, drop_system_cache=False)
        if ranks.rank != 0:
            return exit_status(summary)
        summary = _merge_rank_summaries(out_dir, clips, ranks.world_size, summary.started)
    contact_sheet(out_dir, clips)
    summary.write()
    return exit_status(summary)


def _merge_rank_summaries(out_dir: Path, clips: list[Clip], world_size: int, started: float) -> Summary:
    """Every rank's rows, in batch order."""
    rows = {}
    for rank in range(world_size):
        for row in json.loads((out_dir / f"summary.rank{rank}.json").read_text())["clips"]:
            rows[row["name"]] = Row(**row)
    return Summary(out_dir, [rows[clip.name] for clip in clips], started)


@dataclass(kw_only=True)
class _Job(Work):
    """A batch clip on its way through the stages, with its line and its summary row."""

    clip: Clip
    row: Row
    stage_seconds: dict[str, float] = field(default_factory=dict)  # by `batch_progress.STAGES`
    tracker: MemoryTracker | None = None  # the clip's own, from its diffusion on

    def spend(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        self.row.seconds += seconds

    def shared_models_key(self) -> tuple:
        plan = self.plan
        return (str(plan.model_dir), plan.transformer_folder, str(plan.device), plan.fp8, plan.fp8_attention,
                plan.offload, plan.compiled, plan.text_encoder,
                tuple((str(lora.path), lora.spec.scale) for lora in plan.loras))


def _plan_jobs(clips: list[Clip], out_dir: Path, progress: BatchProgress,
               reservations: contextlib.ExitStack) -> list[_Job]:
    """The clips to diffuse, each with its output name reserved (`outputs.reserve`) in `reservations`; clips whose
    kept latents are decoded here; rows for the rest, each with its line. Each clip's plan line is printed under its
    name, and the notes every clip repeats once (`PlanningLines`)."""
    from ltx2gen import outputs
    from ltx2gen.plan import RunPlan

    jobs, lines = [], PlanningLines()
    for clip in clips:
        row = Row(clip.name)
        progress.summary.rows.append(row)
        job = kept = None
        with lines.of_clip(clip.name):
            try:
                if not skip_if_finished(out_dir, clip, row):
                    run = plan_clip(out_dir, clip)
                    reservations.enter_context(outputs.reserve(run.config)[1])  # an exact name: refused where taken
                    say_rendered_again(run, row)
                    job = _Job(RunPlan.choose(run.config), clip=clip, row=row)
                    kept = run.latents if run.decodes else None
            except ConfigError as err:
                row.status, row.detail = "failed", f"bad input: {err}"
        if kept:  # diffused by an earlier run: decoded now, before any model of the batch loads
            _decode_kept(job, kept)
        elif job:
            jobs.append(job)
            progress.expect(job.stage_seconds)
        if row.status != "pending":
            progress.ended(row)
    lines.say(len(clips))
    return jobs


def _decode_kept(job: _Job, latents: Path) -> None:
    from ltx2gen.clip import recover
    from ltx2gen.latents import load_latents
    from ltx2gen.plan import decode_plan_for

    started = time.perf_counter()
    try:
        # A clip of num_frames auto has its length in its latents file alone
        decode_plan = job.plan.decode_plan or decode_plan_for(job.config, load_latents(latents).video_format.num_frames)
        recover(latents, job.config.output, model_dir=job.plan.model_dir, device=job.plan.device,
                decode_plan=decode_plan)
        if not job.config.keep_latents:
            latents.unlink()
        save_previews(job.config.output)
        job.row.status, job.row.detail = "done", f"decoded from the kept {latents.name}"
    except Exception as err:
        job.row.status, job.row.detail = "failed", f"decoding the kept {latents.name}: {type(err).__name__}: {err}"
    job.row.seconds += time.perf_counter() - started


def _render_group(group: list[_Job], cache, progress: BatchProgress) -> None:
    """The clips that share their models: the stages before diffusion for all of them, then the transformer loaded
    once; each clip is diffused and, where memory holds the decode beside the transformer (`decode_order`), decoded
    at once; otherwise all are decoded once the transformer is freed, said in one line."""
    from ltx2gen.decode_order import why_decoded_after_diffusion
    from ltx2gen.memory import MemoryTracker

    first = group[0].plan
    tracker = MemoryTracker(first.device)
    started = time.perf_counter()
    first.read_ahead_transformer()  # while the group's prompts are encoded
    prepare(tracker, group, cache)
    shared = _GroupStages(list(tracker.reports), time.perf_counter() - started)
    why_after = why_decoded_after_diffusion([job.plan for job in group])
    if why_after:
        print(f"batch: clips are decoded after the group's diffusion: {why_after}", flush=True)
    tracker.run("transformer", _diffuse_group, group, shared, progress, not why_after)
    for job in group:
        if job.row.status == "pending":
            _decode_job(job, progress)


@dataclass
class _GroupStages:
    """What a group's clips share: the reports of the stages before diffusion (each clip's sidecar lists them) and
    the seconds they took."""

    reports: list
    seconds: float


def _diffuse_group(stage, group: list[_Job], shared: _GroupStages, progress: BatchProgress,
                   decode_each: bool) -> None:
    """The transformer's stage: loaded once, then each clip diffused (in a stage of its own, its sidecar's
    `diffusion`) and, with `decode_each`, decoded while the transformer stays loaded."""
    loading = time.perf_counter()
    denoiser = group[0].plan.load_denoiser(stage)
    # The text stage encodes every prompt in one call and the transformer is loaded once, so no clip's part of them
    # is measured apart: each clip takes an even share.
    share = (shared.seconds + time.perf_counter() - loading) / len(group)
    for job in group:
        job.spend("shared", share)
    for job in group:
        _diffuse_job(job, denoiser, shared.reports)
        if job.row.status != "pending":  # it failed: its line now
            progress.ended(job.row, job.stage_seconds)
        elif decode_each:
            _decode_job(job, progress)


def _diffuse_job(job: _Job, denoiser, shared_reports: list) -> None:
    from ltx2gen.clip import ClipFailed, diffuse_with, save_latents
    from ltx2gen.memory import MemoryTracker

    started = time.perf_counter()
    job.tracker = MemoryTracker(job.plan.device)
    job.tracker.reports = list(shared_reports)
    try:
        job.diffusion = job.tracker.run("diffusion", diffuse_with, denoiser, job)
        job.latents_path = save_latents(job.plan, job.diffusion)
    except ClipFailed as failure:
        job.row.status, job.row.detail = "failed", f"latents: {failure}; " + failure.advice.replace("\n  ", " ")
        if failure.interrupted:  # the latents are whole; the batch stops here, writing its summary
            job.row.status = "interrupted"
            raise failure.cause
    except Exception as err:
        job.row.status, job.row.detail = "failed", f"diffusion: {type(err).__name__}: {err}"
    finally:
        job.spend("diffusion", time.perf_counter() - started)


def _decode_job(job: _Job, progress: BatchProgress) -> None:
    """The clip's MP4, sidecar and previews, then its line."""
    from ltx2gen.clip import ClipFailed, finish

    started = time.perf_counter()
    try:
        finish(job.tracker, job.plan, job.diffusion, latents_path=job.latents_path,
               encoded=job.conditioning.encoded)
        job.diffusion = None  # its latents are no longer needed in memory
        save_previews(job.config.output)
        job.row.status = "done"
    except ClipFailed as failure:
        advice = failure.advice.replace("\n  ", " ")
        if failure.interrupted:  # the batch stops here, writing its summary
            job.row.status, job.row.detail = "interrupted", advice
            raise failure.cause
        job.row.status, job.row.detail = "failed", f"decode: {failure}; {advice}"
    except Exception as err:  # the clip is finished; its preview images are not
        job.row.status, job.row.detail = "failed", f"previews: {type(err).__name__}: {err}"
    finally:
        job.spend("decode", time.perf_counter() - started)
    progress.ended(job.row, job.stage_seconds)
