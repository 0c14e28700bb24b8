"""Caption and history-video conditioning through real (tiny, random) transformers / diffusers encoders."""

import numpy as np
import pytest
import torch

from tests.test_pipeline_trajloom import H, S, T, W
from trajloom_hf.models import AutoencoderTraj, TrajFlowTransformer
from trajloom_hf.pipelines import TrajLoomPipeline
from trajloom_hf.schedulers import FlowMatchTrajScheduler
from trajloom_hf.text_conditioning import encode_pooled_text
from trajloom_hf.video_conditioning import encode_video_latents


def tiny_text():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", "a", "cat", "camera", "pans", "left", "dog"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])  # T5: EOS appended
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    enc = T5EncoderModel(T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2))
    return enc.eval(), tokenizer


def tiny_wan():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            latents_mean=[0.1] * 4, latents_std=[2.0] * 4).eval()


def test_masked_mean_pooling_ignores_padding():
    enc, tok = tiny_text()
    both = encode_pooled_text(enc, tok, ["a cat", "a cat camera pans left"])
    alone = encode_pooled_text(enc, tok, ["a cat"])
    assert both.shape == (2, 16) and torch.allclose(both[0], alone[0], atol=1e-5)
    with pytest.raises(TypeError, match="`prompts`"):
        encode_pooled_text(enc, tok, "a cat")


def test_video_latents_align_with_the_token_grid():
    vae = tiny_wan()
    video = np.random.default_rng(0).integers(0, 255, (T, H, W, 3), dtype=np.uint8)
    lat = encode_video_latents(vae, video, (H, W), (H // S, W // S), T, batch_size=1)
    assert lat.shape == (1, 3, 24, 4)
    # token n of latent step k is the Wan latent at grid cell (n // 6, n % 6), normalised
    x = torch.nn.functional.interpolate(torch.from_numpy(video).float().permute(0, 3, 1, 2) / 127.5 - 1, size=(32, 48),
                                        mode="bilinear", align_corners=False).permute(1, 0, 2, 3)[None]
    raw = vae.encode(x).latent_dist.mean
    assert torch.allclose(lat[0, 1, 7], (raw[0, :, 1, 1, 1] - 0.1) / 2.0, atol=1e-5)
    with pytest.raises(ValueError, match="frames must be 64x96"):
        encode_video_latents(vae, video[:, :32], (H, W), (4, 6), T, batch_size=1)


def test_pipeline_with_caption_and_video(tmp_path):
    enc, tok = tiny_text()
    vae = AutoencoderTraj(height=H, width=W, patch_size=S, num_frames=T, hidden_size=32, num_heads=4, encoder_depth=4,
                          decoder_depth=4, latent_channels=4, pos_embed_dim=8, latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    tr = TrajFlowTransformer(latent_channels=4, num_latent_frames=3, grid_size=(4, 6), hidden_size=32, num_heads=4,
                             num_layers=2, text_embed_dim=16, video_latent_channels=4, history_num_frames=T)
    pipe = TrajLoomPipeline(vae=vae, transformer=tr, scheduler=FlowMatchTrajScheduler(), video_vae=tiny_wan(),
                            text_encoder=enc, tokenizer=tok)
    from trajloom_hf.data.synthetic import SceneConfig, generate_clip

    clip = generate_clip(0, SceneConfig(height=H, width=W, num_frames=T, stride=S))
    out = pipe(clip.tracks, clip.visibility, video=clip.frames, prompt="a cat", num_inference_steps=2,
               generator=torch.Generator().manual_seed(0))
    assert out.future_tracks.shape == (1, 1, T, 24, 2) and np.isfinite(out.future_tracks).all()
    pipe.save_pretrained(tmp_path / "p")
    back = TrajLoomPipeline.from_pretrained(tmp_path / "p")
    again = back(clip.tracks, clip.visibility, video=clip.frames, prompt="a cat", num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(again.future_tracks, out.future_tracks, rtol=0, atol=1e-4)  # px ~ 80
    # with a text encoder, no prompt means the official default: the empty caption (its EOS token), not "no text"
    kw = dict(num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    none = back(clip.tracks, clip.visibility, **kw).future_tracks
    kw["generator"] = torch.Generator().manual_seed(0)
    np.testing.assert_array_equal(none, back(clip.tracks, clip.visibility, prompt="", **kw).future_tracks)

    # the forecast CLI feeds the history frames to a pipeline that has a video VAE
    from trajloom_hf.cli import main
    from trajloom_hf.video_io import write_video

    write_video(tmp_path / "clip.mp4", clip.frames, 8)
    np.savez(tmp_path / "t.npz", tracks=clip.tracks, visibility=clip.visibility)
    assert main(["forecast", str(tmp_path / "clip.mp4"), "--pipeline", str(tmp_path / "p"), "--tracks",
                 str(tmp_path / "t.npz"), "--layout", "TN", "--caption", "a cat", "--steps", "1",
                 "--out", str(tmp_path / "o")]) == 0
    import json

    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    assert meta["video_conditioning"] is True and meta["caption"] == "a cat"
