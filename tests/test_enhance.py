"""--enhance-prompt on the tiny real model: diffusers' prompt enhancement with the tiny Gemma (gibberish, so these
check the plumbing: what is encoded, recorded, cached and refused)."""

import json
import shutil

import pytest
import torch

import generate
from conftest import CLIP, run_generate
from ltx2gen import memory, text

CPU = torch.device("cpu")
PROMPT = "a fox in snow"


@pytest.fixture(scope="module")
def enhancing_model(tmp_path_factory):
    """The tiny model with the Gemma 3 processor that enhancement needs, which the published repos do not ship."""
    from ltx2gen.synthetic import write_model

    return write_model("tiny", tmp_path_factory.mktemp("models") / "ltx2-tiny-processor", with_processor=True)


def test_the_enhanced_prompt_is_printed_once_and_recorded_beside_the_original(enhancing_model, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    # With NAG too: one generate.py run covers both features' way through the stages.
    assert run_generate(enhancing_model, out, "--enhance-prompt", "--nag-scale", "8", "--negative-prompt", "a dog",
                        prompt=PROMPT) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["prompt"] == PROMPT and sidecar["enhanced_prompt"] not in (None, "", PROMPT)
    assert sidecar["nag"]["scale"] == 8.0 and sidecar["negative_prompt"] == "a dog"
    assert sidecar["transformer_calls"] == 8
    assert capsys.readouterr().out.count(f"enhanced prompt (seed 7): {sidecar['enhanced_prompt']}") == 1


def test_the_encoded_prompt_is_the_enhanced_one_seeded_and_cached_under_it(enhancing_model, tmp_path):
    cache = text.EmbeddingCache(tmp_path / "cache")
    requests = [text.PromptRequest(PROMPT, None, False, enhance_seed=seed) for seed in (7, 7, 8)]
    with memory.MemoryTracker(CPU).stage("text") as stage:
        first, again, other = text.encode_prompts(stage, enhancing_model, requests, CPU, torch.float32, cache=cache)
        direct = text.encode_prompts(stage, enhancing_model, [text.PromptRequest(first.prompt, None, False)], CPU,
                                       torch.float32)[0]
    assert first.prompt == again.prompt != other.prompt and PROMPT not in (first.prompt, other.prompt)
    assert all(torch.equal(direct.tensors()[name], value) for name, value in first.tensors().items())
    # Cached under the prompt it encodes: a plain request for the enhanced text finds it.
    loads = []
    listener = lambda event, name, obj: loads.append(name) if event == "load" else None  # noqa: E731
    memory.add_listener(listener)
    try:
        with memory.MemoryTracker(CPU).stage("text") as stage:
            hit = text.encode_prompts(stage, enhancing_model, [text.PromptRequest(first.prompt, None, False)], CPU,
                                        torch.float32, cache=cache)[0]
    finally:
        memory.remove_listener(listener)
    assert loads == ["tokenizer"] and hit.prompt == first.prompt and torch.equal(hit.video, first.video)


@pytest.mark.parametrize("missing", ["processor", "chat template"])
def test_a_model_without_what_enhancement_needs_is_refused_with_status_2_before_any_weight(tiny_model, enhancing_model,
                                                                                          tmp_path, capsys, missing):
    if missing == "processor":
        model = tiny_model  # as published: no processor component
    else:
        model = shutil.copytree(enhancing_model, tmp_path / "model")
        (model / "processor" / "chat_template.jinja").unlink()
    loads = []
    listener = lambda event, name, obj: loads.append(name) if event == "load" else None  # noqa: E731
    memory.add_listener(listener)
    try:
        with pytest.raises(SystemExit) as exit_status:
            generate.main(["--prompt", PROMPT, "--model", str(model), "--output", str(tmp_path / "c.mp4"), *CLIP,
                           "--enhance-prompt"])
    finally:
        memory.remove_listener(listener)
    assert exit_status.value.code == 2 and loads == []
    assert "--enhance-prompt: the model" in capsys.readouterr().err
    assert not list(tmp_path.glob("c*"))


def test_a_batch_enhances_per_clip(enhancing_model, tmp_path):
    common = {"prompt": PROMPT, "model": str(enhancing_model), "width": 96, "height": 64, "num_frames": 17, "seed": 7}
    batch_file = tmp_path / "clips.jsonl"
    batch_file.write_text(json.dumps(dict(common, name="enhanced", enhance_prompt=True)) + "\n" +
                          json.dumps(dict(common, name="as_given")) + "\n")
    assert generate.main(["--batch", str(batch_file), "--out", str(tmp_path / "out"),
                          "--embedding-cache", str(tmp_path / "cache")]) == 0
    sidecars = {name: json.loads((tmp_path / "out" / f"{name}.json").read_text()) for name in ("enhanced", "as_given")}
    assert sidecars["enhanced"]["enhanced_prompt"] not in (None, PROMPT)
    assert sidecars["as_given"]["enhanced_prompt"] is None
    assert sidecars["enhanced"]["prompt"] == sidecars["as_given"]["prompt"] == PROMPT
