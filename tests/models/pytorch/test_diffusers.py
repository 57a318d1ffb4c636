"""diffusers architectures of the model matrix: UNets, VAEs and diffusion transformers built from config
dicts with random weights (forge_fe.tools.matrix_builders.diffusers_model), called on a latent, a timestep and
their conditioning. Released configurations run at nightly where they fit this machine (DDPM CIFAR-10
UNet, the Stable Diffusion VAE); the multi-hundred-million-parameter UNets and transformers run at push only.
"""
import torch

from forge_fe.tools import matrix
from forge_fe.tools.matrix_builders import _randn, diffusers_model


def latent(channels, side, tokens=None):
    """(size, config) -> a latent (NCHW, or a token sequence) and timestep, batch 1."""
    def rule(size, config):
        x = _randn(1, channels, side, side) if tokens is None else _randn(1, tokens, channels)
        return {"sample" if tokens is None else "hidden_states": x, "timestep": torch.tensor([10])}
    return rule


def with_text(rule, dim, name="encoder_hidden_states", **extra):
    def both(size, config):
        named = rule(size, config)
        named[name] = _randn(1, 8, dim, seed=1)
        for k, shape in extra.items():
            named[k] = _randn(*shape, seed=2)
        return named
    return both


def image(channels, side):
    return lambda size, config: {"sample": _randn(1, channels, side, side)}


SMALL_UNET = dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8)
SMALL_VAE = dict(in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                 down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
DDPM_CIFAR10 = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
                    layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))
SD_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
              layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
              sample_size=64)

CASES = [
    diffusers_model("UNet2DModel", dict(sample_size=16, in_channels=3, out_channels=3, attention_head_dim=8,
                                        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                        up_block_types=("AttnUpBlock2D", "UpBlock2D"), **SMALL_UNET),
                    DDPM_CIFAR10, latent(3, 16), name="unet2d", arch="ddpm_unet", kind="UNet (DDPM)"),
    diffusers_model("UNet2DConditionModel", dict(sample_size=16, in_channels=4, out_channels=4, cross_attention_dim=32,
                                                 attention_head_dim=4,
                                                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), **SMALL_UNET),
                    None, with_text(latent(4, 16), 32), name="unet2d_condition", arch="sd_unet",
                    kind="UNet (Stable Diffusion, cross-attention)"),
    diffusers_model("AutoencoderKL", dict(latent_channels=4, sample_size=32, **SMALL_VAE), SD_VAE, image(3, 32),
                    name="autoencoder_kl", arch="vae_kl", kind="VAE (Stable Diffusion)"),
    diffusers_model("VQModel", dict(latent_channels=4, num_vq_embeddings=32, sample_size=32, **SMALL_VAE), None,
                    image(3, 32), name="vq_model", arch="vqgan", kind="VQ-VAE"),
    diffusers_model("AutoencoderTiny", dict(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                                            num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)),
                    None, image(3, 32), name="autoencoder_tiny", arch="taesd", kind="VAE (tiny autoencoder)"),
    diffusers_model("DiTTransformer2DModel", dict(num_attention_heads=2, attention_head_dim=16, in_channels=4,
                                                  out_channels=8, num_layers=2, sample_size=8, patch_size=2,
                                                  num_embeds_ada_norm=10),
                    None, lambda size, config: {"hidden_states": _randn(1, 4, 8, 8), "timestep": torch.tensor([10]),
                                                "class_labels": torch.tensor([3])},
                    name="dit", arch="dit", kind="diffusion transformer (DiT)"),
    diffusers_model("PixArtTransformer2DModel", dict(num_attention_heads=2, attention_head_dim=16, in_channels=4,
                                                     out_channels=8, num_layers=2, sample_size=8, patch_size=2,
                                                     cross_attention_dim=32, caption_channels=32),
                    None, lambda size, config: {"hidden_states": _randn(1, 4, 8, 8), "timestep": torch.tensor([10]),
                                                "encoder_hidden_states": _randn(1, 8, 32, seed=1)},
                    constants={"added_cond_kwargs": {"resolution": None, "aspect_ratio": None}},
                    name="pixart", arch="pixart", kind="diffusion transformer (PixArt-alpha)"),
    diffusers_model("SD3Transformer2DModel", dict(sample_size=8, patch_size=2, in_channels=4, out_channels=4,
                                                  num_layers=2, attention_head_dim=16, num_attention_heads=2,
                                                  joint_attention_dim=32, caption_projection_dim=32,
                                                  pooled_projection_dim=16, pos_embed_max_size=16),
                    None, lambda size, config: {"hidden_states": _randn(1, 4, 8, 8), "timestep": torch.tensor([10]),
                                                "encoder_hidden_states": _randn(1, 8, 32, seed=1),
                                                "pooled_projections": _randn(1, 16, seed=2)},
                    name="sd3_transformer", arch="mmdit_sd3", kind="diffusion transformer (SD3 MMDiT)"),
    diffusers_model("FluxTransformer2DModel", dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                                   attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                                   pooled_projection_dim=16, axes_dims_rope=(4, 6, 6)),
                    None, lambda size, config: {"hidden_states": _randn(1, 16, 16), "timestep": torch.tensor([0.5]),
                                                "encoder_hidden_states": _randn(1, 8, 32, seed=1),
                                                "pooled_projections": _randn(1, 16, seed=2),
                                                "img_ids": torch.zeros(16, 3), "txt_ids": torch.zeros(8, 3)},
                    name="flux_transformer", arch="flux", kind="diffusion transformer (Flux)"),
    diffusers_model("ControlNetModel", dict(in_channels=4, cross_attention_dim=32, attention_head_dim=4,
                                            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                            conditioning_embedding_out_channels=(8, 16), **SMALL_UNET),
                    None, lambda size, config: {**with_text(latent(4, 16), 32)(size, config),
                                                "controlnet_cond": _randn(1, 3, 32, 32, seed=3)},
                    name="controlnet", arch="controlnet", kind="ControlNet", output="mid_block_res_sample"),
    diffusers_model("PriorTransformer", dict(num_attention_heads=2, attention_head_dim=16, num_layers=2,
                                             embedding_dim=32, num_embeddings=8, additional_embeddings=4),
                    None, lambda size, config: {"hidden_states": _randn(1, 32), "timestep": torch.tensor([10]),
                                                "proj_embedding": _randn(1, 32, seed=1),
                                                "encoder_hidden_states": _randn(1, 8, 32, seed=2)},
                    name="prior_transformer", arch="unclip_prior", kind="prior transformer (unCLIP)",
                    output="predicted_image_embedding"),
]

test_push, test_data_format, test_nightly = matrix.pytest_tests(CASES)
