"""`generate.py --batch`: the whole batch in this process. Each prompt is encoded once (or read from the embedding
cache), the transformer is loaded once for all the clips that share it, and each clip is decoded as soon as the
memory plan allows; latents are saved as soon as each clip is diffused. The batch file, its rows and summary are
`ltx2gen.batch`'s."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

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
from ltx2gen.clip import Work, prepare
from ltx2gen.errors import ConfigError
from ltx2gen.flag_values import ensure_writable_dir
from ltx2gen.lock import lock_batch_folder


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
    cache = text.EmbeddingCache(cache_dir) if cache_dir else None
    with contextlib.ExitStack() as reservations:  # each clip's output name is the batch's until it ends
        return _render_jobs(_plan_jobs(my_clips, out_dir, summary, reservations), my_clips, clips, summary, cache,
                            ranks)


def _render_jobs(jobs: list[_Job], my_clips: list[Clip], clips: list[Clip], summary: Summary, cache,
                 ranks) -> int:
    from ltx2gen import components
    from ltx2gen.memory import MemoryTracker
    from ltx2gen.ranks import Ranks

    out_dir = summary.out_dir
    groups: dict[tuple, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.shared_models_key(), []).append(job)
    try:
        for group in groups.values():
            first = group[0].plan
            tracker = MemoryTracker(first.device)
            first.read_ahead_transformer()  # while the group's prompts are encoded
            prepare(tracker, group, cache)
            tracker.run("diffusion", _diffuse_group, group)
            for job in group:
                if job.diffusion is not None:
                    _decode_job(job, tracker.reports)
            if not Ranks.share_the_page_cache():  # otherwise each rank evicts once all ranks are done, below
                components.release_page_cache(first.model_dir, drop_system_cache=False)
    except KeyboardInterrupt:
        for row, clip in zip(summary.rows, my_clips):
            if row.status == "pending":
                row.status, row.detail = "interrupted", unfinished(out_dir, clip)
        print("interrupted: stopping after writing the summary", flush=True)
    for index, row in enumerate(summary.rows, 1):
        summary.progress(index, len(summary.rows), row)
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

    def shared_models_key(self) -> tuple:
        plan = self.plan
        return (str(plan.model_dir), plan.transformer_folder, str(plan.device), plan.fp8, plan.fp8_attention,
                plan.offload, plan.compiled, plan.text_encoder,
                tuple((str(lora.path), lora.spec.scale) for lora in plan.loras))


def _plan_jobs(clips: list[Clip], out_dir: Path, summary: Summary, reservations: contextlib.ExitStack) -> list[_Job]:
    """The clips to diffuse, each with its output name reserved (`outputs.reserve`) in `reservations`; clips whose
    kept latents are decoded here; rows for the rest."""
    from ltx2gen import outputs
    from ltx2gen.plan import RunPlan

    jobs = []
    for clip in clips:
        row = Row(clip.name)
        summary.rows.append(row)
        if skip_if_finished(out_dir, clip, row):
            continue
        try:
            run = plan_clip(out_dir, clip)
            reservations.enter_context(outputs.reserve(run.config)[1])  # an exact name: refused where it is taken
            say_rendered_again(run, row)
            job = _Job(RunPlan.choose(run.config), clip=clip, row=row)
            if run.decodes:  # diffused by an earlier run: decoded now, before any model of the batch loads
                _decode_kept(job, run.latents)
            else:
                jobs.append(job)
        except ConfigError as err:
            row.status, row.detail = "failed", f"bad input: {err}"
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


def _diffuse_group(stage, group: list[_Job]) -> None:
    from ltx2gen.clip import ClipFailed, diffuse_with, save_latents

    denoiser = group[0].plan.load_denoiser(stage)
    for job in group:
        started = time.perf_counter()
        try:
            job.diffusion = diffuse_with(stage, denoiser, job)
            job.latents_path = save_latents(job.plan, job.diffusion)
        except ClipFailed as failure:
            job.row.status, job.row.detail = "failed", f"latents: {failure}; " + failure.advice.replace("\n  ", " ")
            if failure.interrupted:  # the latents are whole; the batch stops here, writing its summary
                job.row.status = "interrupted"
                raise failure.cause
        except Exception as err:
            job.row.status, job.row.detail = "failed", f"diffusion: {type(err).__name__}: {err}"
        job.row.seconds += time.perf_counter() - started


def _decode_job(job: _Job, shared_reports: list) -> None:
    from ltx2gen.clip import ClipFailed, finish
    from ltx2gen.memory import MemoryTracker

    started = time.perf_counter()
    tracker = MemoryTracker(job.plan.device)
    tracker.reports = list(shared_reports)
    try:
        finish(tracker, job.plan, job.diffusion, latents_path=job.latents_path,
               encoded=job.conditioning.encoded)
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
    job.row.seconds += time.perf_counter() - started
