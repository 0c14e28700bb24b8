"""The main job, top to bottom (``make quickstart``).

Stage 1 (this version): build a few synthetic clips with ground-truth tracks and render them, so a fresh machine
shows what the data looks like. Each stage skips what is already done, so re-running resumes.
"""

import argparse
import sys
from pathlib import Path

from trajloom_hf.cli import main as trajloom

PRESETS = {
    "smoke": dict(num_clips=2, frames=33, height=96, width=160, stride=16),
    "cpu": dict(num_clips=6, frames=81, height=240, width=416, stride=16),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", default="quickstart_out")
    return parser.parse_args()


def main():
    args = parse_args()
    p = PRESETS[args.preset]
    out = Path(args.out)
    print(f"[1/1] synthetic clips -> {out / 'synthetic'}")
    trajloom(["synth", "--out", str(out / "synthetic"), "--num-clips", str(p["num_clips"]), "--frames", str(p["frames"]),
              "--height", str(p["height"]), "--width", str(p["width"]), "--stride", str(p["stride"])])
    print(f"done: open {out.resolve() / 'synthetic'} (clip_*_tracks.gif, clip_*_montage.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
