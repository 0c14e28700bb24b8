"""FrameEncoder (conv and pretrained-backbone paths), frame selection, and the frame-conditioned pipelines
(TrajLoom with video, the WHN-style image baseline)."""

import numpy as np
import pytest
import torch

from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.frame_conditioning import conditioning_frames, frame_tokens
from trajloom_hf.models import AutoencoderTraj, FrameEncoder, TrajFlowTransformer
from trajloom_hf.pipelines import TrajLoomPipeline
from trajloom_hf.schedulers import FlowMatchTrajScheduler

H, W, S, T = 64, 96, 16, 9
GRID = (H // S, W // S)


def tiny_dinov2_config():
    from transformers import Dinov2Config

    return Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        image_size=28, patch_size=14)


def random_frames(b=2, t=3, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (b, t, H, W, 3), dtype=np.uint8))


def test_conv_encoder_shapes_dtypes_and_low_resolution_cache_equivalence():
    enc = FrameEncoder(height=H, width=W, grid_stride=S, out_channels=5, hidden_channels=8, cell_px=4).eval()
    frames = random_frames()
    out = enc(frames).features
    assert out.shape == (2, 3, GRID[0] * GRID[1], 5) and out.dtype == torch.float32
    small = enc.resize_frames(frames)
    assert small.shape == (2, 3, GRID[0] * 4, GRID[1] * 4, 3) and small.dtype == torch.uint8
    torch.testing.assert_close(enc(small).features, out, rtol=0, atol=0)  # what the training cache stores
    torch.testing.assert_close(enc(frames.float() / 255).features, out, rtol=1e-5, atol=1e-5)  # float in [0, 1]
    # each clip and frame is encoded on its own
    torch.testing.assert_close(enc(frames[1:, 2:]).features, out[1:, 2:], rtol=1e-5, atol=1e-5)


def test_conv_features_are_aligned_with_the_grid():
    enc = FrameEncoder(height=H, width=W, grid_stride=S, out_channels=4, hidden_channels=8, cell_px=4,
                       global_context=False).eval()
    frames = random_frames(1, 1)
    edited = frames.clone()
    edited[:, :, :S, :S] = 255 - edited[:, :, :S, :S]  # the top-left cell only
    a, b = enc(frames).features[0, 0], enc(edited).features[0, 0]
    diff = (a - b).abs().sum(-1).reshape(GRID)
    assert diff[0, 0] > 1e-3 * a.abs().sum(-1).mean() and diff[-1, -1] == 0  # a far cell does not see it (no global term)


def test_bad_frames_are_rejected():
    enc = FrameEncoder(height=H, width=W, grid_stride=S, out_channels=4, hidden_channels=8)
    with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\]"):
        enc(torch.zeros(2, H, W, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="must be 64x96"):
        enc(torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        enc(torch.full((1, 1, H, W, 3), 200.0))
    with pytest.raises(TypeError, match="uint8"):
        enc(torch.zeros(1, 1, H, W, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="multiples"):
        FrameEncoder(height=65, width=W, grid_stride=S)
    with pytest.raises(ValueError, match="power of two"):
        FrameEncoder(height=H, width=W, grid_stride=S, cell_px=6)
    with pytest.raises(ValueError, match="backbone_config"):
        FrameEncoder(height=H, width=W, grid_stride=S, backbone="pretrained")


@pytest.mark.parametrize("kind", ["conv", "pretrained"])
def test_save_load_round_trip(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "conv":
        enc = FrameEncoder(height=H, width=W, grid_stride=S, out_channels=4, hidden_channels=8)
    else:
        from transformers import Dinov2Model

        enc = FrameEncoder.from_backbone(Dinov2Model(tiny_dinov2_config()), height=H, width=W, grid_stride=S, out_channels=4)
    enc.eval().save_pretrained(tmp_path / "enc")
    back = FrameEncoder.from_pretrained(tmp_path / "enc").eval()
    frames = random_frames()
    torch.testing.assert_close(back(frames).features, enc(frames).features, rtol=0, atol=0)


def test_dinov2_backbone_is_frozen_resampled_to_the_grid_and_matches_the_model():
    from transformers import Dinov2Model

    torch.manual_seed(0)
    dino = Dinov2Model(tiny_dinov2_config()).eval()
    enc = FrameEncoder.from_backbone(dino, height=H, width=W, grid_stride=S, out_channels=3)
    assert isinstance(enc.vision_model, Dinov2Model) and not any(p.requires_grad for p in enc.vision_model.parameters())
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {"proj.weight", "proj.bias", "global_proj.weight", "global_proj.bias"}
    enc.train()
    assert not enc.vision_model.training  # a frozen backbone stays in eval mode
    frames = random_frames(1, 2)
    feats = enc(frames).features
    assert feats.shape == (1, 2, GRID[0] * GRID[1], 3)
    # by hand: resize to 28x28, ImageNet normalisation, patch tokens (CLS dropped), bilinear to the grid, projection
    x = enc.resize_frames(frames)[0].permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    tok = dino(pixel_values=x).last_hidden_state[:, 1:]  # [2, 4, 16]
    grid = torch.nn.functional.interpolate(tok.transpose(1, 2).reshape(2, 16, 2, 2), size=GRID, mode="bilinear",
                                           align_corners=False).flatten(2).transpose(1, 2)
    want = enc.proj(grid) + enc.global_proj(grid.mean(1, keepdim=True))
    torch.testing.assert_close(feats[0], want, rtol=1e-4, atol=1e-5)
    loss = feats.square().mean()
    loss.backward()
    assert enc.proj.weight.grad is not None and all(p.grad is None for p in enc.vision_model.parameters())


def test_conditioning_frames_per_mode():
    video = torch.arange(11).view(1, 11, 1, 1, 1).expand(1, 11, 2, 2, 3)  # frame index as value
    tracks_mode = conditioning_frames(video, T, 4, "tracks")  # last 9 frames: 2..10, every 4th
    assert tracks_mode[0, :, 0, 0, 0].tolist() == [2, 6, 10]
    assert conditioning_frames(video, T, 4, "last_frame")[0, :, 0, 0, 0].tolist() == [10]
    with pytest.raises(ValueError, match="history needs 9"):
        conditioning_frames(video[:, :5], T, 4, "tracks")
    with pytest.raises(ValueError, match="history_mode"):
        conditioning_frames(video, T, 4, "first_frame")
    enc = FrameEncoder(height=H, width=W, grid_stride=S, out_channels=4, hidden_channels=8).eval()
    one = frame_tokens(enc, random_frames(2, 1), 3)
    assert one.shape == (2, 3, 24, 4) and torch.equal(one[:, 0], one[:, 2])
    with pytest.raises(ValueError, match="3 latent steps"):
        frame_tokens(enc, random_frames(2, 2), 3)


# ---------------------------------------------------------------------------------------------------------------
# pipelines


def tiny_frame_pipeline(history_mode, seed=0, with_encoder=True, anchor=False, height=H):
    torch.manual_seed(seed)
    grid = (height // S, W // S)
    vae = AutoencoderTraj(height=height, width=W, patch_size=S, num_frames=T, temporal_stride=4, hidden_size=32, num_heads=4,
                          encoder_depth=4, decoder_depth=4, latent_channels=4, pos_embed_dim=8, use_offsets=False,
                          latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    for p in vae.parameters():  # open the zero-initialised gates/final layer so outputs depend on the latents
        if p.dim() == 3 or p.shape[0] == 2:
            torch.nn.init.normal_(p, std=0.05)
    tr = TrajFlowTransformer(latent_channels=4, num_latent_frames=3, grid_size=grid, hidden_size=32, num_heads=4,
                             num_layers=2, video_latent_channels=6, use_text_cond=False, use_video_cond=with_encoder,
                             history_num_frames=T, temporal_stride=4)
    for p in tr.parameters():
        if p.dim() >= 1 and p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    enc = None
    if with_encoder:
        enc = FrameEncoder(height=height, width=W, grid_stride=S, out_channels=6, hidden_channels=8).eval()
        with torch.no_grad():  # untrained: make the image matter as much as the tracks do
            for p in enc.parameters():
                p.mul_(3.0)
            tr.alpha_video_ctx.fill_(5.0)
    return TrajLoomPipeline(vae=vae.eval(), transformer=tr.eval(), scheduler=FlowMatchTrajScheduler(anchor_first=anchor),
                            frame_encoder=enc, history_mode=history_mode)


@pytest.fixture(scope="module")
def clips():
    """Two rendered clips whose frame 0 is the query grid (as on every tracked clip) but whose scenes differ."""
    cfg = SceneConfig(height=H, width=W, num_frames=2 * T, stride=S)
    return [generate_clip(seed, cfg) for seed in (3, 4)]


def test_whn_style_baseline_sees_the_clip(clips, monkeypatch):
    """Fails for the old baseline (history_mode="first_frame", no image): two clips gave identical conditioning."""
    a, b = clips
    np.testing.assert_allclose(a.tracks[0], b.tracks[0])  # frame 0 carries nothing about the clip
    gen = lambda: [torch.Generator().manual_seed(0)]  # noqa: E731
    old = tiny_frame_pipeline("first_frame", with_encoder=False)
    fa = old(a.tracks[:T], a.visibility[:T], generator=gen(), num_inference_steps=2).future_tracks
    fb = old(b.tracks[:T], b.visibility[:T], generator=gen(), num_inference_steps=2).future_tracks
    np.testing.assert_allclose(fa, fb, atol=1e-5)  # the defect: an unconditional sampler

    whn = tiny_frame_pipeline("last_frame")
    seen = []
    original = whn.transformer.prepare_context

    def spy(z, v, video, *args, **kw):
        seen.append((z.clone(), v.clone(), video.clone()))
        return original(z, v, video, *args, **kw)

    monkeypatch.setattr(whn.transformer, "prepare_context", spy)
    ga = whn(a.tracks[:T], a.visibility[:T], video=a.frames[:T], generator=gen(), num_inference_steps=2).future_tracks
    gb = whn(b.tracks[:T], b.visibility[:T], video=b.frames[:T], generator=gen(), num_inference_steps=2).future_tracks
    (za, _, va), (zb, _, vb) = seen
    assert (za - zb).abs().max() > 1e-3 and (va - vb).abs().max() > 1e-3  # different conditioning
    # and different futures, same seed (untrained tiny models move points by ~0.02 px; fp32 noise is ~1e-5 px)
    assert np.abs(ga - gb).max() > 2e-3
    # appearance and positions at the forecast start only: earlier frames do not matter, the last one does
    frames = a.frames[:T].copy()
    frames[:-1] = 0
    same = whn(a.tracks[:T], a.visibility[:T], video=frames, generator=gen(), num_inference_steps=2).future_tracks
    np.testing.assert_allclose(same, ga, atol=1e-5)
    frames[-1] = 255 - frames[-1]
    other = whn(a.tracks[:T], a.visibility[:T], video=frames, generator=gen(), num_inference_steps=2).future_tracks
    assert np.abs(other - ga).max() > 2e-3
    # earlier track positions do not matter either
    moved = a.tracks[:T].copy()
    moved[:-1] += 3.0
    np.testing.assert_allclose(whn(moved, a.visibility[:T], video=a.frames[:T], generator=gen(), num_inference_steps=2,
                                   check_query_grid=False).future_tracks, ga, atol=1e-4)  # frame 0 moved off the grid


def test_trajloom_with_video_uses_one_frame_per_latent_step(clips, monkeypatch):
    a, _ = clips
    pipe = tiny_frame_pipeline("tracks", anchor=True)
    seen = {}
    original = pipe.frame_encoder.forward

    def spy(frames, *args, **kw):
        seen["frames"] = frames.clone()
        return original(frames, *args, **kw)

    monkeypatch.setattr(pipe.frame_encoder, "forward", spy)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    out = pipe(a.tracks[:T], a.visibility[:T], video=a.frames[:T], generator=g(), num_inference_steps=2).future_tracks
    assert seen["frames"].shape == (1, 3, H, W, 3)
    np.testing.assert_array_equal(seen["frames"][0].numpy(), a.frames[[0, 4, 8]])
    frames = a.frames[:T].copy()
    frames[4] = 255 - frames[4]
    changed = pipe(a.tracks[:T], a.visibility[:T], video=frames, generator=g(), num_inference_steps=2).future_tracks
    assert np.abs(changed - out).max() > 2e-3


def test_frame_pipeline_round_trip_and_errors(tmp_path, clips):
    a, _ = clips
    pipe = tiny_frame_pipeline("last_frame")
    pipe.save_pretrained(tmp_path / "p")
    back = TrajLoomPipeline.from_pretrained(tmp_path / "p")
    assert isinstance(back.frame_encoder, FrameEncoder) and back.config.history_mode == "last_frame"
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    x = pipe(a.tracks[:T], a.visibility[:T], video=a.frames[:T], generator=g(), num_inference_steps=2).future_tracks
    y = back(a.tracks[:T], a.visibility[:T], video=a.frames[:T], generator=g(), num_inference_steps=2).future_tracks
    np.testing.assert_allclose(x, y, atol=1e-4)  # loaded weights may take another kernel path (~4e-6 px)
    with pytest.raises(ValueError, match="pass `video=`"):
        pipe(a.tracks[:T], a.visibility[:T])
    with pytest.raises(ValueError, match="must be 64x96"):
        pipe(a.tracks[:T], a.visibility[:T], video=a.frames[:T, :32])
    with pytest.raises(ValueError, match="2 clips"):
        pipe(a.tracks[:T], a.visibility[:T], video=np.stack([a.frames[:T]] * 2))
    c = pipe.components
    with pytest.raises(ValueError, match="video_latent_channels"):
        TrajLoomPipeline(**{**c, "frame_encoder": FrameEncoder(height=H, width=W, grid_stride=S, out_channels=3)})
    with pytest.raises(ValueError, match="first_frame"):
        TrajLoomPipeline(**{**c, "history_mode": "first_frame"})


def test_training_builds_the_encoder_from_a_pretrained_backbone_folder(tmp_path):
    """--frame_encoder_backbone: a transformers folder (here a tiny random DINOv2 saved locally, no download)."""
    from types import SimpleNamespace

    from transformers import Dinov2Model

    from trajloom_hf.training.frame_training import build_frame_encoder, frame_encoder_parameters

    torch.manual_seed(0)
    Dinov2Model(tiny_dinov2_config()).save_pretrained(tmp_path / "dino")
    (tmp_path / "fe.json").write_text('{"out_channels": 5}')
    vae_config = SimpleNamespace(height=H, width=W, patch_size=S)
    enc = build_frame_encoder(vae_config, config_path=str(tmp_path / "fe.json"), backbone_path=str(tmp_path / "dino"))
    assert enc.config.backbone == "pretrained" and enc.config.out_channels == 5
    assert {id(p) for p in frame_encoder_parameters(enc)} == {id(p) for p in (*enc.proj.parameters(), *enc.global_proj.parameters())}
    assert enc(random_frames(1, 1)).features.shape == (1, 1, 24, 5)
    conv = build_frame_encoder(vae_config, config_path=str(tmp_path / "fe.json"))
    assert conv.config.backbone == "conv" and len(frame_encoder_parameters(conv)) == len(list(conv.parameters()))
    conv.save_pretrained(tmp_path / "conv")
    with pytest.raises(ValueError, match="works on"):
        build_frame_encoder(SimpleNamespace(height=H, width=2 * W, patch_size=S), init_from=str(tmp_path / "conv"))
