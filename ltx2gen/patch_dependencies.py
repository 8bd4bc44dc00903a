"""The diffusers functions the patches in `ltx2gen.patches` rely on, with their parameters as diffusers 0.42.1
(`DIFFUSERS_VERSION`) has them: tests/test_patches.py fails when any of them changes, so a diffusers upgrade cannot
silently change this product's numbers. A new patch adds its dependencies to `DEPENDS_ON` here."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

DIFFUSERS_VERSION = "0.42.1"


@dataclass(frozen=True)
class Dependency:
    """A diffusers function a patch relies on (`module:qualified.name`), its parameters as `parameters` prints
    them in DIFFUSERS_VERSION, and what relies on it."""

    target: str
    parameters: str
    relied_on_by: str


LTX2 = "diffusers.models.transformers.transformer_ltx2"
PIPELINE = "diffusers.pipelines.ltx2.pipeline_ltx2:LTX2Pipeline"
DEPENDS_ON = (
    Dependency(f"{LTX2}:apply_split_rotary_emb", "x, freqs",
               "rotary_embedding_in_chunks: replaced by a wrapper that rotates token chunks"),
    Dependency("diffusers.models.attention:FeedForward.forward", "self, hidden_states, *args, **kwargs",
               "token_wise_layers_in_chunks: each block's feed-forwards run over token chunks"),
    Dependency("diffusers.models.normalization:RMSNorm.forward", "self, hidden_states",
               "token_wise_layers_in_chunks: each block's RMS norms run over token chunks"),
    Dependency("diffusers.pipelines.ltx2.connectors:LTX2TextConnectors.forward",
               "self, text_encoder_hidden_states, attention_mask, padding_side='left', scale_factor=8",
               "given_text_conditioning: the pipeline's connectors call returns the text stage's outputs"),
    Dependency("diffusers.schedulers.scheduling_flow_match_euler_discrete:FlowMatchEulerDiscreteScheduler.__init__",
               "self, num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False, base_shift=0.5, "
               "max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096, invert_sigmas=False, "
               "shift_terminal=None, use_karras_sigmas=False, use_exponential_sigmas=False, use_beta_sigmas=False, "
               "time_shift_type='exponential', stochastic_sampling=False",
               "taking_sigmas_as_given: the checkpoint's scheduler with every sigma transformation off"),
    Dependency(f"{PIPELINE}.prepare_audio_latents",
               "self, batch_size=1, num_channels_latents=8, audio_latent_length=1, num_mel_bins=64, "
               "noise_scale=0.0, dtype=None, device=None, generator=None, latents=None",
               "following_audio: wrapped to start the audio from the given latents"),
    Dependency(f"{PIPELINE}._pack_audio_latents", "latents, patch_size=None, patch_size_t=None",
               "following_audio (and following_latent_frames): packs the given audio latents as the pipeline packs "
               "its own"),
    Dependency(f"{PIPELINE}._normalize_audio_latents", "latents, latents_mean, latents_std",
               "following_audio (and following_latent_frames): normalizes them as the pipeline does"),
    Dependency(f"{PIPELINE}.prepare_latents",
               "self, batch_size=1, num_channels_latents=128, height=512, width=768, num_frames=121, "
               "noise_scale=0.0, dtype=None, device=None, generator=None, latents=None",
               "following_latent_frames: wrapped to keep the clip's latent frames in place"),
    Dependency(f"{PIPELINE}.convert_x0_to_velocity", "self, sample, denoised_output, step_idx, scheduler=None",
               "following_latent_frames: wrapped to set the kept tokens' guided x0 to the clip's latents"),
    Dependency(f"{PIPELINE}._pack_latents", "latents, patch_size=1, patch_size_t=1",
               "following_latent_frames: packs the clip's latents as the pipeline packs its own"),
    Dependency(f"{PIPELINE}._normalize_latents", "latents, latents_mean, latents_std, scaling_factor=1.0",
               "following_latent_frames: normalizes them as the pipeline does"),
    Dependency(f"{LTX2}:LTX2VideoTransformer3DModel.forward",
               "self, hidden_states, audio_hidden_states, encoder_hidden_states, audio_encoder_hidden_states, "
               "timestep, audio_timestep=None, sigma=None, audio_sigma=None, encoder_attention_mask=None, "
               "audio_encoder_attention_mask=None, num_frames=None, height=None, width=None, fps=24.0, "
               "audio_num_frames=None, video_coords=None, audio_coords=None, isolate_modalities=False, "
               "spatio_temporal_guidance_blocks=None, perturbation_mask=None, use_cross_timestep=False, "
               "attention_kwargs=None, video_self_attention_mask=None, video_keyframes_mask=None, return_dict=True",
               "following_audio: its hooks set audio_timestep and audio_sigma, read audio_hidden_states and rewrite "
               "the audio output; following_latent_frames: its hooks set timestep per token and audio_timestep, read "
               "hidden_states and rewrite the video output; timestep_modulation_per_run: its pre-hook reads "
               "timestep and audio_hidden_states"),
    Dependency(f"{LTX2}:LTX2AudioVideoAttnProcessor.__call__",
               "self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, query_rotary_emb=None, "
               "key_rotary_emb=None",
               "nag.NagCrossAttention: the stock processor's computation with two contexts; attentions_kept_local: "
               "its _parallel_config"),
    Dependency(f"{LTX2}:LTX2PerturbedAttnProcessor.__call__",
               "self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, query_rotary_emb=None, "
               "key_rotary_emb=None, perturbation_mask=None, all_perturbed=None",
               "self_attention_perturbable: the processor set on the self-attentions of LTX-2.0 blocks (later "
               "versions are built with it); attentions_kept_local: its _parallel_config"),
    Dependency(f"{LTX2}:LTX2VideoTransformerBlock.forward",
               "self, hidden_states, audio_hidden_states, encoder_hidden_states, audio_encoder_hidden_states, temb, "
               "temb_audio, temb_ca_scale_shift, temb_ca_audio_scale_shift, temb_ca_gate, temb_ca_audio_gate, "
               "temb_prompt=None, temb_prompt_audio=None, video_rotary_emb=None, audio_rotary_emb=None, "
               "ca_video_rotary_emb=None, ca_audio_rotary_emb=None, encoder_attention_mask=None, "
               "audio_encoder_attention_mask=None, self_attention_mask=None, audio_self_attention_mask=None, "
               "a2v_cross_attention_mask=None, v2a_cross_attention_mask=None, use_a2v_cross_attention=True, "
               "use_v2a_cross_attention=True, perturbation_mask=None, all_perturbed=None",
               "self_attention_perturbable: passes the perturbation to attn1 and audio_attn1 where the block's "
               "perturbed_attn is set"),
    Dependency(f"{LTX2}:LTX2VideoTransformerBlock.get_mod_params", "scale_shift_table, temb, batch_size",
               "timestep_modulation_per_run: replaced on the block class, widens a per-run modulation to the tokens"),
    Dependency(f"{LTX2}:LTX2AdaLayerNormSingle.forward",
               "self, timestep, added_cond_kwargs=None, batch_size=None, hidden_dtype=None",
               "timestep_modulation_per_run: forward hooks on the video's time_embed and cross-attention "
               "modulations keep one row per run of the (modulation, embedded timestep) they return"),
    Dependency("diffusers.models.attention_dispatch:dispatch_attention_fn",
               "query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False, "
               "attention_kwargs=None, *, backend=None, parallel_config=None",
               "nag.NagCrossAttention: attends with the processor's backend and parallel configuration"),
    Dependency(f"{LTX2}:dispatch_attention_fn",
               "query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False, "
               "attention_kwargs=None, *, backend=None, parallel_config=None",
               "video_self_attention_in_fp8: wrapped where LTX-2's processors look it up, to send the video "
               "self-attention to the FP8 kernel"),
    Dependency("diffusers.models.modeling_utils:ModelMixin._resolve_parallel_config", "self, config",
               "parallel_config_on: replaced on the transformer, called by enable_parallelism with the "
               "ContextParallelConfig, records the ParallelConfig on the model and returns it"),
    Dependency("diffusers.models._modeling_parallel:ParallelConfig.setup",
               "self, rank, world_size, device, *, mesh=None", "parallel_config_on: sets up the rank's mesh"),
    Dependency("diffusers.models._modeling_parallel:ContextParallelInput", "split_dim, expected_dims=None, "
               "split_output=False", "context_parallel.plan: which transformer inputs split along the tokens (a "
               "private diffusers module)"),
    Dependency("diffusers.models._modeling_parallel:ContextParallelOutput", "gather_dim, expected_dims=None",
               "context_parallel.plan: where the video output is gathered (a private diffusers module)"),
    Dependency("diffusers.pipelines.ltx2.utils:resolve_default_image_crf", "text_encoder",
               "image.image_crf: called with a stand-in holding only the text encoder's model_type"),
    Dependency("diffusers.pipelines.ltx2.utils:apply_image_conditioning_crf", "image, crf",
               "image.prepare_frame: the H.264 re-compression of a conditioning image"),
    Dependency("diffusers.pipelines.ltx2.pipeline_ltx2_condition:LTX2VideoCondition",
               "frames, index=0, strength=1.0, crf=None",
               "image.ImageConditioning.pipeline: the condition an --image-strength below 1 passes"),
    Dependency("diffusers.hooks.group_offloading:ModuleGroup._to_cpu", "tensor, low_cpu_mem_usage",
               "host_copies_apart_from_weights: a TorchAO weight already in pinned host memory is its own host "
               "copy here, which onloading would then move to the GPU too"),
    Dependency("diffusers.models.autoencoders.ltx2_diffusion_decoder:_neighborhood_block_mask",
               "num_frames, height, width, kernel_size, device",
               "neighborhood_attention_fused: the block mask it builds with torch's create_block_mask, which the "
               "patch makes blockwise"),
    Dependency("diffusers.models.attention_dispatch:_native_flex_attention",
               "query, key, value, attn_mask=None, is_causal=False, scale=None, enable_gqa=False, return_lse=False, "
               "_parallel_config=None",
               "neighborhood_attention_fused: calls flex_attention through the module it reads, which the patch "
               "compiles"),
)


def parameters(function) -> str:
    """A function's parameters with their defaults, without annotations (which vary with the torch version)."""
    signature = inspect.signature(function)
    bare = signature.replace(parameters=[parameter.replace(annotation=inspect.Parameter.empty)
                                         for parameter in signature.parameters.values()],
                             return_annotation=inspect.Signature.empty)
    return str(bare)[1:-1]


def resolve(target: str):
    module, _, qualified = target.partition(":")
    value = importlib.import_module(module)
    for name in qualified.split("."):
        value = getattr(value, name)
    return value


def changed_dependencies() -> list[str]:
    """One line per dependency whose parameters are not those the patches were written against."""
    changed = []
    for dependency in DEPENDS_ON:
        try:
            found = parameters(resolve(dependency.target))
        except (ImportError, AttributeError) as err:
            found = f"missing ({err})"
        if found != dependency.parameters:
            changed.append(f"{dependency.target}: ({found}), written against ({dependency.parameters}); "
                           f"relied on by {dependency.relied_on_by}")
    return changed
