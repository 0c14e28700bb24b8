"""The official TrajLoom computation, written from the specification (trajloom-official-code.md §1.5-1.6, §2, §3) for
benchmarks: what the released code computes, in fp32, with its data layout and without this package's shortcuts.

* VAE (dense): tracks rasterised to a ``[T, 2, H, W]`` field minus the dense anchor field, ``Conv2d(2, D, s, s)`` patch
  embedding, Latte blocks (RMSNorm in fp32, SDPA), replicate-padded temporal conv, and a decoder head
  ``Linear(D, s*s*2)`` unpatchified to the dense field plus anchors, read at the query pixels.
* Generator: the DiT stack with the history context rebuilt and projected at every call, the conditioning vector
  repeated per sequence and the spatial context repeated for every future step (reference §3.8).

Weights use the official state-dict layout: the VAE's from :func:`random_official_vae_state_dict` (converted to an
``AutoencoderTraj`` with :func:`trajloom_hf.convert.autoencoder.convert_trajloom_vae` for "ours"), the generator's
equal ``TrajFlowTransformer.state_dict()`` (reference Appendix A).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from trajloom_hf.encoding import dense_anchor_field
from trajloom_hf.models.embeddings import sincos_1d, sincos_2d, timestep_embedding


def random_official_vae_state_dict(height, width, stride, frames, dim, depth, latent, pos_dim, seed=0):
    """A random official ``trajloom_vae.pt`` state dict whose layers keep activations O(1) (1/sqrt(fan-in) weights,
    gates 0.3, a small offset head: decoded offsets of a few pixels)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, fan_in=None, scale=1.0):
        fan = fan_in if fan_in is not None else (shape[1] if len(shape) > 1 else 1)
        return torch.randn(*shape, generator=g) * (scale / math.sqrt(fan))

    gh, gw = height // stride, width // stride
    anchor = torch.as_tensor(dense_anchor_field(height, width), dtype=torch.float32).permute(2, 0, 1)[None, None]
    sd = {
        "pos_embed": sincos_2d(gh, gw, dim)[None], "temp_embed_in": sincos_1d(range(frames), dim)[None],
        "offset_anchor_grid": anchor,
        "temp_compressor.conv.weight": r(dim, dim, 7, fan_in=7 * dim), "temp_compressor.conv.bias": torch.zeros(dim),
        "temp_expander.deconv.weight": r(dim, dim, 7, fan_in=2 * dim), "temp_expander.deconv.bias": torch.zeros(dim),
        "x_embedder.proj.weight": r(dim, 2, stride, stride, fan_in=2, scale=20.0 / stride**2),
        "x_embedder.proj.bias": torch.zeros(dim),
        "patch_pos_lff.w": torch.randn(pos_dim // 2, 2, generator=g),
        "patch_pos_lff.mlp.fc1.weight": r(4 * pos_dim, pos_dim), "patch_pos_lff.mlp.fc1.bias": torch.zeros(4 * pos_dim),
        "patch_pos_lff.mlp.fc2.weight": r(pos_dim, 4 * pos_dim), "patch_pos_lff.mlp.fc2.bias": torch.zeros(pos_dim),
        "patch_pos_proj.weight": r(dim, pos_dim), "patch_pos_proj.bias": torch.zeros(dim),
        "to_latents.weight": r(2 * latent, dim), "to_latents.bias": torch.zeros(2 * latent),
        "from_latents.weight": r(dim, latent), "from_latents.bias": torch.zeros(dim),
        "final_layer.weight": r(stride * stride * 2, dim, scale=0.01), "final_layer.bias": torch.zeros(stride * stride * 2),
    }
    for part in ("encoder_blocks", "decoder_blocks"):
        for i in range(depth):
            p = f"{part}.{i}."
            sd.update({
                p + "gate_msa": torch.full((1, 1, dim), 0.3), p + "gate_mlp": torch.full((1, 1, dim), 0.3),
                p + "norm1.weight": torch.ones(dim), p + "norm2.weight": torch.ones(dim), p + "norm3.weight": torch.ones(dim),
                p + "attn.qkv.weight": r(3 * dim, dim), p + "attn.qkv.bias": torch.zeros(3 * dim),
                p + "attn.proj.weight": r(dim, dim), p + "attn.proj.bias": torch.zeros(dim),
                p + "mlp.fc1.weight": r(4 * dim, dim), p + "mlp.fc1.bias": torch.zeros(4 * dim),
                p + "mlp.fc2.weight": r(dim, 4 * dim), p + "mlp.fc2.bias": torch.zeros(dim),
            })
    return sd


def _rms(x, weight=None, eps=1e-6):
    y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return (y if weight is None else y * weight).to(x.dtype)


def _lin(sd, name, x):
    return F.linear(x, sd[name + ".weight"], sd[name + ".bias"])


def _sdpa(q, k, v, heads):
    b, lq, d = q.shape
    split = lambda t: t.reshape(b, -1, heads, d // heads).permute(0, 2, 1, 3)  # noqa: E731
    return F.scaled_dot_product_attention(split(q), split(k), split(v)).permute(0, 2, 1, 3).reshape(b, lq, d)


class OfficialVAE:
    """The official dense TrajLoom-VAE forward (reference §2.2-2.5) on an official state dict."""

    def __init__(self, sd, height, width, stride, frames, heads, temporal_stride=4):
        self.sd, self.h, self.w, self.s, self.t, self.heads, self.ts = sd, height, width, stride, frames, heads, temporal_stride
        self.gh, self.gw = height // stride, width // stride
        self.depth = sum(1 for k in sd if k.startswith("encoder_blocks.") and k.endswith(".gate_msa"))

    def _block(self, p, x):
        sd, b = self.sd, x.shape[0]
        h = _lin(sd, p + "attn.qkv", _rms(x, sd[p + "norm1.weight"]))
        q, k, v = h.chunk(3, -1)
        x = x + sd[p + "gate_msa"] * _lin(sd, p + "attn.proj", _sdpa(q, k, v, self.heads))
        m = _lin(sd, p + "mlp.fc2", F.gelu(_lin(sd, p + "mlp.fc1", _rms(x, sd[p + "norm3.weight"]))))
        return x + sd[p + "gate_mlp"] * m

    def _stage(self, part, idx, h, temp_embed=None):
        b, t, n, d = h.shape
        for j, i in enumerate(idx):  # spatial first, then temporal (reference §2.5)
            if j % 2 == 0:
                h = self._block(f"{part}.{i}.", h.reshape(b * t, n, d)).reshape(b, t, n, d)
            else:
                x = h.permute(0, 2, 1, 3).reshape(b * n, t, d)
                if j == 1 and temp_embed is not None:
                    x = x + temp_embed
                h = self._block(f"{part}.{i}.", x).reshape(b, n, t, d).permute(0, 2, 1, 3)
        return h

    def encode(self, tracks_norm):
        """``[B, T, N, 2]`` normalised -> posterior mean ``[B, K, N, C]`` (dense input stage, §1.5-1.6, §2.2)."""
        sd, b, s = self.sd, tracks_norm.shape[0], self.s
        grid = tracks_norm.reshape(b, self.t, self.gh, self.gw, 2)
        dense = grid.repeat_interleave(s, 2).repeat_interleave(s, 3).permute(0, 1, 4, 2, 3)  # [B, T, 2, H, W]
        x = (dense - sd["offset_anchor_grid"]).reshape(b * self.t, 2, self.h, self.w)
        tok = F.conv2d(x, sd["x_embedder.proj.weight"], sd["x_embedder.proj.bias"], stride=s)
        n, d = self.gh * self.gw, tok.shape[1]
        h = tok.flatten(2).transpose(1, 2).reshape(b, self.t, n, d) + sd["pos_embed"]
        rows, cols = torch.meshgrid(torch.arange(self.gh), torch.arange(self.gw), indexing="ij")
        c = torch.stack([2 * (cols.reshape(-1) + 0.5) / self.gw - 1, 2 * (rows.reshape(-1) + 0.5) / self.gh - 1], -1)
        f = c.float() @ sd["patch_pos_lff.w"].t()
        f = torch.cat([torch.cos(f), torch.sin(f)], -1) / math.sqrt(2 * f.shape[-1])
        f = _lin(sd, "patch_pos_lff.mlp.fc2", F.gelu(_lin(sd, "patch_pos_lff.mlp.fc1", f)))
        h = h + _lin(sd, "patch_pos_proj", f)
        half = self.depth // 2
        h = self._stage("encoder_blocks", range(half), h, sd["temp_embed_in"][0])
        pad = self.ts - 1
        seq = F.pad(h.permute(0, 2, 3, 1).reshape(b * n, d, self.t), (pad, pad), mode="replicate")
        z = F.conv1d(seq, sd["temp_compressor.conv.weight"], sd["temp_compressor.conv.bias"], stride=self.ts)
        h = z.reshape(b, n, d, -1).permute(0, 3, 1, 2)
        h = self._stage("encoder_blocks", range(half, self.depth), h)
        return _lin(sd, "to_latents", h)[..., : sd["from_latents.weight"].shape[1]]

    def decode(self, z):
        """Latents ``[B, K, N, C]`` -> tracks ``[B, T, N, 2]`` normalised, read from the dense decoded field (§2.3)."""
        sd, b, k, s = self.sd, z.shape[0], z.shape[1], self.s
        n, half = self.gh * self.gw, self.depth // 2
        h = self._stage("decoder_blocks", range(half), _lin(sd, "from_latents", z))
        d = h.shape[-1]
        seq = F.pad(h.permute(0, 2, 3, 1).reshape(b * n, d, k), (3, 3), mode="replicate")  # 3 latent steps each side
        out = F.conv_transpose1d(seq, sd["temp_expander.deconv.weight"], sd["temp_expander.deconv.bias"],
                                 stride=self.ts, padding=self.ts - 1)
        h = out[..., 3 * self.ts : 3 * self.ts + self.t].reshape(b, n, d, self.t).permute(0, 3, 1, 2)
        h = self._stage("decoder_blocks", range(half, self.depth), h)
        patches = _lin(sd, "final_layer", h).reshape(b, self.t, self.gh, self.gw, s, s, 2)
        dense = patches.permute(0, 1, 6, 2, 4, 3, 5).reshape(b, self.t, 2, self.h, self.w) + sd["offset_anchor_grid"]
        return dense[:, :, :, ::s, ::s].permute(0, 1, 3, 4, 2).reshape(b, self.t, n, 2).clamp(-1, 1)


class OfficialGenerator:
    """The official TrajLoom-Flow generator forward (reference §3.3-3.8) on its state dict, no context cache."""

    def __init__(self, sd, grid_size, heads, history_frames=81, temporal_stride=4):
        self.sd, self.heads = sd, heads
        self.gh, self.gw = grid_size
        self.layers = sum(1 for k in sd if k.startswith("blocks.") and k.endswith(".adaLN.1.weight"))
        d, k = sd["pos_embed"].shape[2], sd["track_fusion_gate_logit"].shape[0]
        steps = torch.arange(k, dtype=torch.float32) * temporal_stride
        self.p_hist = timestep_embedding(steps, d)[None]
        self.p_fut = timestep_embedding(steps + history_frames, d)[None]

    def _block(self, i, x, c, ctx):
        sd, p, d = self.sd, f"blocks.{i}.", x.shape[-1]
        mods = _lin(sd, p + "adaLN.1", F.silu(c))[:, None].chunk(9, -1)
        mod = lambda v, sh, sc: v * (1 + sc) + sh  # noqa: E731
        h = mod(_rms(x), mods[0], mods[1])
        q, k, v = _lin(sd, p + "attn.qkv", h).chunk(3, -1)
        hd = d // self.heads
        qn = lambda t: _rms(t.reshape(*t.shape[:-1], self.heads, hd)).reshape(t.shape)  # noqa: E731  qk-norm per head
        x = x + mods[2] * _lin(sd, p + "attn.proj", _sdpa(qn(q), qn(k), v, self.heads))
        h = mod(_rms(x), mods[3], mods[4])
        kc, vc = _lin(sd, p + "xattn.kv", ctx).chunk(2, -1)
        x = x + mods[5] * _lin(sd, p + "xattn.proj", _sdpa(qn(_lin(sd, p + "xattn.q", h)), qn(kc), vc, self.heads))
        h = mod(_rms(x), mods[6], mods[7])
        return x + mods[8] * _lin(sd, p + "mlp.fc2", F.gelu(_lin(sd, p + "mlp.fc1", h)))

    def __call__(self, z_t, t, z_hist, hist_vis, z_video, text):
        sd = self.sd
        b, k, n, _ = z_t.shape
        tt = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(b)
        c = _lin(sd, "time_mlp.2", F.silu(_lin(sd, "time_mlp.0", timestep_embedding(tt, sd["pos_embed"].shape[2]))))
        if text is not None:  # skipped without a caption (reference §3.6)
            c = c + _lin(sd, "text_proj", text)
        c = c + sd["beta_video_cond"] * _lin(sd, "video_global_proj", z_video.mean((1, 2)))
        c = c + sd["beta_track_cond"] * _lin(sd, "track_global_proj", torch.cat([z_hist.mean((1, 2)), z_hist[:, -1].mean(1)], -1))
        h = _lin(sd, "hist_track_proj", z_hist) + sd["alpha_hist_vis"] * _lin(sd, "hist_vis_proj", hist_vis[..., None])
        u = sd["alpha_video_ctx"] * _lin(sd, "hist_video_proj", z_video)
        omega = torch.linspace(0, 1, k).view(1, k, 1, 1)
        gate = torch.sigmoid(sd["track_fusion_gate_logit"]).view(1, k, 1, 1)
        x = _lin(sd, "in_proj", z_t) + sd["track_fusion_scale"] * gate * (h[:, -1:] + omega * (h[:, -1:] - h[:, -2:-1]))
        ctx = torch.cat([h, u], 1) + self.p_hist.unsqueeze(2).repeat(1, 2, 1, 1) + sd["seg_embed"][0]  # [B, 2K, N, D]
        x = x + self.p_fut.unsqueeze(2) + sd["seg_embed"][1] + sd["pos_embed"].unsqueeze(1)
        d = x.shape[-1]
        ctx_t = ctx.permute(0, 2, 1, 3).reshape(b * n, 2 * k, d)
        ctx_s = torch.cat([ctx[:, k - 1], ctx[:, 2 * k - 1]], 1) + sd["pos_embed"].repeat(1, 2, 1)  # [B, 2N, D]
        ctx_s = ctx_s.repeat_interleave(k, 0)  # shared tokens repeated for every future step: [B*K, 2N, D]
        for pair in range(self.layers // 2):
            i = 2 * pair + 1  # temporal first
            seq = x.permute(0, 2, 1, 3).reshape(b * n, k, d)
            x = self._block(i, seq, c.repeat_interleave(n, 0), ctx_t).reshape(b, n, k, d).permute(0, 2, 1, 3)
            i = 2 * pair
            x = self._block(i, x.reshape(b * k, n, d), c.repeat_interleave(k, 0), ctx_s).reshape(b, k, n, d)
        return _lin(sd, "out_proj", _rms(x))


def official_query_anchor_check(height, width, stride):
    """The dense anchor field read at the query pixels equals ``trajloom_hf.encoding.grid_anchors`` (sanity)."""
    from trajloom_hf.encoding import grid_anchors

    dense = dense_anchor_field(height, width)[::stride, ::stride].reshape(-1, 2)
    return float(np.abs(dense - grid_anchors(height, width, stride, "topleft")).max())
