"""The inputs a clip follows besides its prompt, as plug-ins (`base.Conditioner`): each is one module here, its
flags one dataclass among `GenerateConfig`'s bases, and one line of `CONDITIONERS` below. The stage sequence
(`ltx2gen.stages`), the plan, the records, the batch lines and the refusals of paths that do not take an input go
through this list alone.
"""

from __future__ import annotations

from ltx2gen.conditioners.audio import AudioConditioner
from ltx2gen.conditioners.base import Conditioner, RunConditions, Span
from ltx2gen.conditioners.images import ImageConditioner
from ltx2gen.conditioners.reference import ReferenceConditioner
from ltx2gen.conditioners.retake import RetakeConditioner

# In the order their stages run, their records are written and their conditions reach a denoising run.
CONDITIONERS: tuple[type[Conditioner], ...] = (ImageConditioner, AudioConditioner, ReferenceConditioner,
                                               RetakeConditioner)

__all__ = ["CONDITIONERS", "Conditioner", "RunConditions", "Span", "given_inputs", "plan_all", "records",
           "encode_all", "conditions_for"]


def given_inputs(settings) -> list[tuple[str, object]]:
    """(flag, value) of every conditioning input `settings` gives."""
    return [given for kind in CONDITIONERS for given in kind.given(settings)]


def plan_all(settings, model_dir) -> tuple[Conditioner, ...]:
    """The conditioners a clip's settings give, each with its inputs inspected once."""
    return tuple(planned for kind in CONDITIONERS if (planned := kind.plan(settings, model_dir)) is not None)


def records(conditioners: tuple[Conditioner, ...]) -> dict:
    """Every conditioner's entries of the latents file and the sidecar, an absent one's too."""
    given = {type(item): item for item in conditioners}
    return {key: value for kind in CONDITIONERS
            for key, value in (given[kind].record() if kind in given else kind.absent_record).items()}


def encode_all(tracker, model_dir, clips: list[tuple[Conditioner, ...]], *, device, dtype) -> list[dict]:
    """Each conditioner's stage, once for all the `clips` (each clip's conditioners) that use it: its model loaded
    once and freed before the next stage. Returns, for each clip, what each of its conditioners encoded, by name."""
    encoded: list[dict] = [{} for _ in clips]
    for kind in CONDITIONERS:
        users = [(index, item) for index, items in enumerate(clips) for item in items if isinstance(item, kind)]
        if users:
            results = tracker.run(kind.stage, kind.encode, model_dir, [item for _, item in users], device=device,
                                  dtype=dtype)
            for (index, _), result in zip(users, results):
                encoded[index][kind.name] = result
    return encoded


def conditions_for(conditioners: tuple[Conditioner, ...], encoded: dict, span: Span | None = None,
                   conditions: RunConditions | None = None) -> RunConditions:
    """What a denoising run of `span` (None: the whole clip) follows: `conditions` (the clip so far, for a window)
    and then each conditioner's part."""
    conditions = conditions or RunConditions()
    for item in conditioners:
        item.condition(encoded[item.name], conditions, span)
    return conditions
