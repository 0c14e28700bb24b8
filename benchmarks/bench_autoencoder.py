"""AutoencoderTraj cost: the grid form vs the official dense-field formulation, and CPU training throughput.

    python benchmarks/bench_autoencoder.py [--skip-train]

Every measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own.

* grid: ``encode`` + ``decode`` at the paper config (480x832, stride 32, 81 frames, B = 1), what this package runs;
* dense: the same transformer with the official dense input and output stages: the tracks rasterised to
  ``[81, 2, 480, 832]``, minus the dense anchor field, ``Conv2d(2, 512, 32, 32)``; and the decoder head
  ``Linear(512, 32*32*2)`` unpatchified to ``[81, 2, 480, 832]`` plus anchors, read at the query pixels;
* train: optimiser steps/s at the CPU preset (240x416, stride 16, 81 frames, batch 4).
"""

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
import torch.nn.functional as F
from trajloom_hf.models.autoencoder_traj import AutoencoderTraj
from trajloom_hf.encoding import dense_anchor_field, make_query_grid, normalize_tracks, rasterize_tracks, to_grid
torch.set_num_threads(2)
mode = sys.argv[1]
torch.manual_seed(0)
if mode == "train":
    from trajloom_hf.vae_losses import vae_loss
    m = AutoencoderTraj(height=240, width=416, patch_size=16, num_frames=81, hidden_size=128, num_heads=4,
                        encoder_depth=4, decoder_depth=4, latent_channels=16, pos_embed_dim=32)
    opt = torch.optim.AdamW(m.parameters(), lr=2e-5)
    q = torch.from_numpy(make_query_grid(240, 416, 16))
    x = normalize_tracks(q[None, None] + torch.randn(4, 81, 390, 2).cumsum(1), 240, 416)
    vis = torch.ones(4, 81, 390, dtype=torch.bool)
    def step():
        out = m(x)
        loss = vae_loss(out.sample, x, vis, out.latent_dist.kl(), grid_hw=m.grid_hw).loss
        loss.backward(); opt.step(); opt.zero_grad()
    step()
    t0 = time.perf_counter(); n = 3
    for _ in range(n):
        step()
    sec = (time.perf_counter() - t0) / n
else:
    m = AutoencoderTraj().eval()  # the paper config
    q = torch.from_numpy(make_query_grid(480, 832, 32))
    x = normalize_tracks(q[None, None] + torch.randn(1, 81, 390, 2).cumsum(1), 480, 832)
    conv_w = torch.randn(512, 2, 32, 32) * 0.01
    head = torch.nn.Linear(512, 32 * 32 * 2)
    anchor = torch.as_tensor(dense_anchor_field(480, 832), dtype=torch.float32).permute(2, 0, 1)
    @torch.no_grad()
    def run():
        if mode == "grid":
            z = m.encode(x).latent_dist.mode()
            return m.decode(z).sample
        # dense input stage, then the shared transformer, then the dense output stage
        dense = rasterize_tracks(to_grid(x[0], (15, 26)), 32).permute(0, 3, 1, 2) - anchor      # [81, 2, 480, 832]
        tok = F.conv2d(dense, conv_w, stride=32).flatten(2).transpose(1, 2)[None]                # [1, 81, 390, 512]
        z = m.encode(x).latent_dist.mode()  # transformer cost (the grid embedding it adds is negligible)
        m.decode(z)
        h = torch.randn(1, 81, 390, 512)
        patches = head(h).reshape(81, 15, 26, 32, 32, 2)
        full = patches.permute(0, 5, 1, 3, 2, 4).reshape(81, 2, 480, 832) + anchor              # [81, 2, 480, 832]
        return full[:, :, ::32, ::32] + tok.sum() * 0
    run()
    t0 = time.perf_counter(); n = 2
    for _ in range(n):
        run()
    sec = (time.perf_counter() - t0) / n
print(json.dumps({"sec": sec, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    grid, dense = measure("grid"), measure("dense")
    print("| AutoencoderTraj, paper config, B = 1, 81 frames, CPU | encode+decode (s) | peak RSS (MB) |")
    print("|---|---|---|")
    print(f"| grid form (this package) | {grid['sec']:.2f} | {grid['peak_mb']:.0f} |")
    print(f"| dense-field formulation (official) | {dense['sec']:.2f} | {dense['peak_mb']:.0f} |")
    if not args.skip_train:
        train = measure("train")
        print()
        print("| training, CPU preset (240x416, stride 16, 81 frames, hidden 128, 4+4 blocks), batch 4 | s/step | steps/s |")
        print("|---|---|---|")
        print(f"| AdamW step | {train['sec']:.2f} | {1 / train['sec']:.2f} |")


if __name__ == "__main__":
    main()
