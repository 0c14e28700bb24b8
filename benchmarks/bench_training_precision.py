"""Training step time in fp32 and under bf16 autocast (what Accelerate's ``--mixed_precision bf16`` does) on the CPU,
at the quickstart cpu preset sizes (examples/quickstart.py PRESETS['cpu']: 96x160 px, stride 16 -> 60 tokens,
33 frames, batch 8; VAE 4+4 blocks x 64, generator 4 layers x 96).

    OMP_NUM_THREADS=1 python benchmarks/bench_training_precision.py --threads 1

One AdamW step = forward, fp32 loss, backward, update; the two settings alternate (best of ``--rounds`` x 3 steps).
The coordinate layers and the losses stay fp32 under autocast (trajloom_hf.precision.autocast_off).
"""

import argparse
import contextlib
import time

import torch

from trajloom_hf.encoding import make_query_grid, normalize_tracks
from trajloom_hf.models import AutoencoderTraj, TrajFlowTransformer
from trajloom_hf.vae_losses import vae_loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vae = AutoencoderTraj(height=96, width=160, patch_size=16, num_frames=33, hidden_size=64, num_heads=4,
                          encoder_depth=4, decoder_depth=4, latent_channels=8, pos_embed_dim=16)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    q = torch.from_numpy(make_query_grid(96, 160, 16))
    x = normalize_tracks(q[None, None] + torch.randn(8, 33, 60, 2).cumsum(1), 96, 160)
    vis = torch.ones(8, 33, 60, dtype=torch.bool)
    gen = TrajFlowTransformer(latent_channels=8, num_latent_frames=9, grid_size=(6, 10), hidden_size=96, num_heads=4,
                              num_layers=4, use_text_cond=False, use_video_cond=False, history_num_frames=33)
    gopt = torch.optim.AdamW(gen.parameters(), lr=1e-4)
    zh, z1 = torch.randn(8, 9, 60, 8), torch.randn(8, 9, 60, 8)

    def autocast(on):
        return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()

    def vae_step(on):
        with autocast(on):
            out = vae(x)
        loss = vae_loss(out.sample, x, vis, out.latent_dist.kl(), grid_hw=vae.grid_hw).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    def flow_step(on):
        t = torch.rand(8)
        z0 = torch.randn_like(z1)
        zt = (1 - t.view(-1, 1, 1, 1)) * z0 + t.view(-1, 1, 1, 1) * z1
        with autocast(on):
            v = gen(zt, t, zh).sample
        loss = ((v.float() - (z1 - z0)) ** 2).mean()
        loss.backward()
        gopt.step()
        gopt.zero_grad()

    print(f"| model (quickstart cpu preset, batch 8, {args.threads} threads) | fp32 s/step | bf16 autocast s/step | speed-up |")
    print("|---|---|---|---|")
    for name, step in (("AutoencoderTraj", vae_step), ("TrajFlowTransformer", flow_step)):
        for on in (False, True):
            step(on)
        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.rounds):
            for on in (False, True):
                t0 = time.perf_counter()
                for _ in range(3):
                    step(on)
                best[on] = min(best[on], (time.perf_counter() - t0) / 3)
        print(f"| {name} | {best[False]:.3f} | {best[True]:.3f} | {best[False] / best[True]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
