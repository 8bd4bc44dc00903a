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
    from ltx2gen.testing.synthetic import write_model

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


@pytest.fixture(scope="module")
def prompt_enhancer(tmp_path_factory):
    """A tiny real Gemma 4 instruct model shaped like google/gemma-4-E2B-it, LTX-2.5's prompt enhancer."""
    from ltx2gen.testing.synthetic import write_prompt_enhancer

    return write_prompt_enhancer(tmp_path_factory.mktemp("models") / "gemma-4-tiny-it")


@pytest.fixture(scope="module")
def enhanced_25_clip(tiny_25_model, prompt_enhancer, tmp_path_factory):
    """One LTX-2.5 clip rendered with --enhance-prompt and the tiny enhancer: its sidecar, what was printed, and
    the lifecycle seen by a listener (each event, and whether the enhancer was gone when the text encoder began
    loading)."""
    import contextlib
    import io
    import weakref

    events, enhancer_refs, enhancer_gone = [], [], []

    def observe(event, name, obj):
        events.append((event, name))
        if event == "loaded" and name == "prompt_enhancer":
            enhancer_refs.append(weakref.ref(obj))
        if event == "load" and name == "text_encoder":
            enhancer_gone.append(all(ref() is None for ref in enhancer_refs))

    out = tmp_path_factory.mktemp("clips") / "enhanced25.mp4"
    printed = io.StringIO()
    memory.add_listener(observe)
    try:
        with contextlib.redirect_stdout(printed):
            status = run_generate(tiny_25_model, out, "--enhance-prompt", "--prompt-enhancer", str(prompt_enhancer),
                                  "--keep-latents", prompt=PROMPT)
    finally:
        memory.remove_listener(observe)
    assert status == 0
    return json.loads(out.with_suffix(".json").read_text()), printed.getvalue(), events, enhancer_refs, enhancer_gone


def test_ltx_2_5_enhances_with_its_own_enhancer_freed_before_the_text_encoder_loads(enhanced_25_clip,
                                                                                   prompt_enhancer):
    sidecar, printed, events, enhancer_refs, enhancer_gone = enhanced_25_clip
    assert sidecar["prompt"] == PROMPT and sidecar["enhanced_prompt"] not in (None, "", PROMPT)
    assert sidecar["prompt_enhancer"] == str(prompt_enhancer)
    assert printed.count(f"enhanced prompt (seed 7): {sidecar['enhanced_prompt']}") == 1
    # Loaded once, freed, and gone (no reference left anywhere) before the text encoder starts loading.
    assert len(enhancer_refs) == 1 and enhancer_gone == [True]
    order = [event for event in events if event[1] in ("prompt_enhancer", "text_encoder")]
    assert order[:4] == [("load", "prompt_enhancer"), ("loaded", "prompt_enhancer"), ("freed", "prompt_enhancer"),
                         ("load", "text_encoder")]


def test_ltx_2_5_enhancement_is_diffusers_own_with_the_same_enhancer_and_seed(enhanced_25_clip, tiny_25_model,
                                                                             prompt_enhancer):
    """diffusers' documented LTX-2.5 enhancement: the enhancer loaded into the pipeline's prompt_enhancer, the call
    with enable_prompt_enhancement=True and the run's generator (its default system prompt and recipe). Gemma 4's
    own processor needs torchvision, absent here, so the pipeline gets the enhancer's tokenizer as ours does."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from conftest import stock_pipeline
    from ltx2gen.enhance import TokenizerProcessor

    sidecar = enhanced_25_clip[0]
    pipe = stock_pipeline(tiny_25_model)
    pipe.prompt_enhancer = AutoModelForImageTextToText.from_pretrained(prompt_enhancer, dtype=torch.float32)
    pipe.processor = TokenizerProcessor(AutoTokenizer.from_pretrained(prompt_enhancer))
    enhanced = []
    stock_enhance = pipe.enhance_prompt
    pipe.enhance_prompt = lambda *args, **kwargs: enhanced.append(stock_enhance(*args, **kwargs)[0]) or enhanced
    call = dict(sidecar["pipeline_call"], num_inference_steps=1, output_type="latent")
    pipe(prompt=PROMPT, enable_prompt_enhancement=True, generator=torch.Generator().manual_seed(sidecar["seed"]),
         max_sequence_length=sidecar["prompt_tokens"], **call)
    assert enhanced == [sidecar["enhanced_prompt"]]


@pytest.mark.parametrize("missing", ["not downloaded", "weights", "not Gemma 4"])
def test_a_missing_or_wrong_prompt_enhancer_is_refused_with_status_2_before_any_weight(tiny_25_model, prompt_enhancer,
                                                                                      tmp_path, capsys, missing):
    if missing == "not downloaded":  # the tests run with HF_HUB_OFFLINE=1
        enhancer, message = "google/gemma-4-E2B-it", "(docker: 'download google/gemma-4-E2B-it')"
    else:
        enhancer = shutil.copytree(prompt_enhancer, tmp_path / "enhancer")
        if missing == "weights":
            (enhancer / "model.safetensors").unlink()
            message = "holds no .safetensors weights"
        else:
            config = json.loads((enhancer / "config.json").read_text())
            (enhancer / "config.json").write_text(json.dumps(dict(config, model_type="gemma3")))
            message = "holds a 'gemma3' model"
    loads = []
    listener = lambda event, name, obj: loads.append(name) if event == "load" else None  # noqa: E731
    memory.add_listener(listener)
    try:
        with pytest.raises(SystemExit) as exit_status:
            generate.main(["--prompt", PROMPT, "--model", str(tiny_25_model), "--output", str(tmp_path / "c.mp4"),
                           *CLIP, "--enhance-prompt", "--prompt-enhancer", str(enhancer)])
    finally:
        memory.remove_listener(listener)
    error = capsys.readouterr().err
    assert exit_status.value.code == 2 and loads == []
    assert f"--prompt-enhancer {enhancer}" in error and message in error
    assert not list(tmp_path.glob("c*"))


def test_ltx_2_3_enhances_with_its_own_text_encoder_and_published_processor(tiny_23_model, prompt_enhancer):
    """LTX-2.3's text encoder is Gemma 3, which enhances its own prompts (diffusers and ltx-pipelines alike), with
    the processor its repos publish: no separate enhancer is resolved, whatever --prompt-enhancer says."""
    from ltx2gen import enhance

    assert enhance.check_supported(tiny_23_model, "google/gemma-4-E2B-it") is None
    assert enhance.check_supported(tiny_23_model, str(prompt_enhancer)) is None
