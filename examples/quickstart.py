"""The main job (``make quickstart``), top to bottom, on a CPU.

1. build a small synthetic TrajLoomBench (train / validation / test); as in the paper (§4.1.2: AllTracker tracks for
   all data, synthetic Kubric included) the tracks come from a tracker run on the rendered frames, here the embedded
   optical-flow tracker, not from the scene geometry,
2. train AutoencoderTraj and compute its latent statistics,
3. train TrajFlowTransformer, then the on-policy K-step stage, then the visibility head,
4. save the whole TrajLoomPipeline with ``save_pretrained``,
5. train, with the same budget, a WHN-style baseline (first frame only, absolute coordinates, no track history),
6. ``trajloom evaluate`` on the held-out test split: TrajLoom vs WHN-style vs constant velocity vs static,
7. write ``results.md`` with that table and GIFs of history + forecasts for a few test clips,
8. write Hugging Face model cards (``README.md``) into the saved folders and ``model_cards/``, with the measured numbers.

Every stage is a call of the package's own scripts and CLI, and is skipped when its output exists, so re-running
resumes (the training scripts themselves also resume from their latest checkpoint).

    python examples/quickstart.py --preset cpu      # the full run (see PRESETS for its budget)
    python examples/quickstart.py --preset smoke    # a few minutes; what CI runs
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = "synthetic_tracked"  # the bench config: synthetic scenes, tracks from the embedded tracker

PRESETS = {
    "smoke": dict(
        height=80, width=96, stride=16, frames=9, train=8, validation=2, test=4,
        vae=dict(hidden_size=32, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=4, pos_embed_dim=8),
        vae_steps=30, flow=dict(hidden_size=32, num_heads=4, num_layers=2), flow_steps=30, on_policy_steps=6,
        vis_steps=20, batch=4, samples=2, sample_steps=4, gifs=2,
    ),
    "cpu": dict(
        height=96, width=160, stride=16, frames=33, train=160, validation=8, test=32,
        vae=dict(hidden_size=64, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=8, pos_embed_dim=16),
        vae_steps=450, flow=dict(hidden_size=96, num_heads=4, num_layers=4), flow_steps=800, on_policy_steps=60,
        vis_steps=200, batch=8, samples=4, sample_steps=10, gifs=3,
    ),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", default="quickstart_out")
    return parser.parse_args()


def stage(title, done: Path, cmd, log: Path):
    """Run ``cmd`` unless ``done`` exists; record its command line and wall time in ``log`` (for the model cards)."""
    if done.exists():
        print(f"[skip] {title} (found {done})")
        return
    print(f"[run ] {title}", flush=True)
    t0 = time.time()
    subprocess.run([str(c) for c in cmd], check=True)
    seconds = time.time() - t0
    print(f"[done] {title} in {seconds:.0f} s", flush=True)
    record = json.loads(log.read_text()) if log.exists() else {}
    # as typed from the repository root with the default --out (log is <out>/<preset>/stages.json), for the cards
    shown = ["python" if c == sys.executable else
             str(c).replace(str(HERE.parent) + "/", "").replace(str(log.parent.parent), "quickstart_out") for c in cmd]
    record[title] = {"command": " ".join(shown), "seconds": seconds}
    write_json(log, record)


def write_json(path: Path, obj) -> Path:
    from trajloom_hf.video_io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1))
    return path


def main():
    args = parse_args()
    p = PRESETS[args.preset]
    out = Path(args.out) / args.preset
    py = sys.executable
    trajloom = [py, "-m", "trajloom_hf.cli"]
    bench = out / "trajloombench"
    t_start = time.time()
    log = out / "stages.json"

    # 1. data
    stage("1/7 synthetic TrajLoomBench", bench / "README.md", trajloom + [
        "bench", "build", "--source", "synthetic", "--tracker", "optical_flow", "--out", bench, "--config", CONFIG,
        "--num-train", p["train"], "--num-validation", p["validation"], "--num-test", p["test"],
        "--height", p["height"], "--width", p["width"], "--stride", p["stride"],
        "--history-frames", p["frames"], "--future-frames", p["frames"], "--shard-size", 32], log)
    common = ["--bench", bench, "--bench_config", CONFIG, "--train_batch_size", p["batch"], "--report_to", "csv"]
    geometry = ["--height", p["height"], "--width", p["width"], "--stride", p["stride"], "--num_frames", p["frames"]]

    # 2.-5. the two models, each: VAE -> flow -> (TrajLoom only: on-policy, visibility head)
    flow_cfg = write_json(out / "configs" / "transformer.json", p["flow"])
    vae_cfg = write_json(out / "configs" / "vae.json", p["vae"])
    for name, vae_extra, flow_extra in (
        ("trajloom", [], []),
        ("whn", ["--no_offsets"], ["--history_mode", "first_frame", "--no_anchor", "--no_history_visibility"]),
    ):
        label = "TrajLoom" if name == "trajloom" else "WHN-style baseline"
        d = out / name
        stage(f"2/7 {label}: AutoencoderTraj", d / "vae" / "config.json", [
            py, HERE / "train_autoencoder_traj.py", "--output_dir", d / "vae", "--model_config", vae_cfg, *geometry,
            *common, "--learning_rate", 2e-3, "--lr_warmup_steps", 10, "--max_train_steps", p["vae_steps"],
            "--validation_steps", p["vae_steps"], "--checkpointing_steps", max(10, p["vae_steps"] // 4),
            "--resume_from_checkpoint", "latest", *vae_extra], log)
        stage(f"3/7 {label}: TrajFlowTransformer", d / "flow" / "transformer" / "config.json", [
            py, HERE / "train_trajloom_flow.py", "--vae_path", d / "vae", "--output_dir", d / "flow",
            "--transformer_config", flow_cfg, *common, "--learning_rate", 1e-3, "--max_train_steps", p["flow_steps"],
            "--validation_steps", 0, "--checkpointing_steps", max(10, p["flow_steps"] // 4),
            "--latent_cache_dir", d / "latents", "--resume_from_checkpoint", "latest", *flow_extra], log)
        flow_dir = d / "flow"
        if name == "trajloom":
            stage("3/7 TrajLoom: on-policy K-step stage", d / "flow_on_policy" / "transformer" / "config.json", [
                py, HERE / "train_trajloom_flow.py", "--vae_path", d / "vae", "--output_dir", d / "flow_on_policy",
                "--init_transformer", d / "flow" / "transformer", *common, "--on_policy", "--learning_rate", 2e-4,
                "--on_policy_batch_size", p["batch"], "--max_train_steps", p["on_policy_steps"], "--validation_steps", 0,
                "--checkpointing_steps", max(5, p["on_policy_steps"] // 2), "--latent_cache_dir", d / "latents",
                "--resume_from_checkpoint", "latest"], log)
            flow_dir = d / "flow_on_policy"
            stage("3/7 TrajLoom: visibility head", d / "vis" / "visibility_predictor" / "config.json", [
                py, HERE / "train_visibility_predictor.py", "--vae_path", d / "vae", "--output_dir", d / "vis", *common,
                "--max_train_steps", p["vis_steps"], "--lr_warmup_steps", 5, "--validation_steps", 0,
                "--checkpointing_steps", max(5, p["vis_steps"] // 2), "--resume_from_checkpoint", "latest"], log)
        if not (d / "pipeline" / "model_index.json").exists():
            print(f"[run ] 4/7 {label}: save the TrajLoomPipeline", flush=True)
            assemble(d, flow_dir, history_mode="tracks" if name == "trajloom" else "first_frame",
                     with_vis=name == "trajloom")

    # 6. evaluation
    results = out / "results"
    stage("6/7 trajloom evaluate (test split)", results / "results.json", trajloom + [
        "evaluate", "--pipeline", out / "trajloom" / "pipeline", "--baseline", f"WHN-style={out / 'whn' / 'pipeline'}",
        "--bench", bench, "--config", CONFIG, "--split", "test", "--num-samples", p["samples"],
        "--steps", p["sample_steps"], "--out", results], log)

    # 7. pictures and results.md
    print("[run ] 7/7 GIFs and results.md", flush=True)
    gifs = render_examples(out, bench, p)
    table = (results / "results.md").read_text()
    md = [f"# trajloom-hf quickstart ({args.preset} preset)", "",
          f"Synthetic TrajLoomBench (tracks from the embedded optical-flow tracker, as the paper's AllTracker protocol) at {p['height']}x{p['width']} (stride {p['stride']}), {p['frames']} history + "
          f"{p['frames']} future frames; {p['train']} training and {p['test']} test clips. Training and evaluation "
          f"took {sum(st['seconds'] for st in json.loads(log.read_text()).values()) / 60:.1f} min on this machine "
          f"(per stage: `stages.json`); this invocation {(time.time() - t_start) / 60:.1f} min.", "",
          table.split("\n", 2)[-1], "", "## Forecasts (history, then GT | TrajLoom | WHN-style futures)", ""]
    md += [f"![{g.stem}]({g.relative_to(out)})" for g in gifs]
    (out / "results.md").write_text("\n".join(md) + "\n")

    # 8. model cards, from the measured results
    print("[run ] 8/8 model cards", flush=True)
    cards = write_cards(out, args.preset, p, log)
    print(f"\nresults: {(out / 'results.md').resolve()}\nGIFs:    {(out / 'gifs').resolve()}\n"
          f"cards:   {cards.resolve()}")


def write_cards(out: Path, preset: str, p, log: Path) -> Path:
    """One card per trained artefact, in its folder (``README.md``) and collected under ``out/model_cards``."""
    from trajloom_hf import AutoencoderTraj, TrajLoomPipeline
    from trajloom_hf.model_card import TrainingRecord, model_card, write_model_card

    record = TrainingRecord(
        preset=preset, reproduce=f"python examples/quickstart.py --preset {preset}" + ("   # = make quickstart" if preset == "cpu" else ""),
        dataset="trajloombench", dataset_config=CONFIG,
        data_description=(f"a synthetic TrajLoomBench tracked with the embedded optical-flow tracker ({p['train']} training clips, {p['height']}x{p['width']} px, stride "
                          f"{p['stride']}, {p['frames']} history + {p['frames']} future frames)"),
        stages=json.loads(log.read_text()) if log.exists() else {})
    results_json = out / "results" / "results.json"
    pipe = TrajLoomPipeline.from_pretrained(out / "trajloom" / "pipeline")
    whn = TrajLoomPipeline.from_pretrained(out / "whn" / "pipeline")
    n = lambda m: sum(t.numel() for t in m.parameters())  # noqa: E731
    vae_stage, flow_stage = "2/7 TrajLoom: AutoencoderTraj", "3/7 TrajLoom: TrajFlowTransformer"
    cards = {
        "autoencoder_traj": (out / "trajloom" / "vae", model_card(
            "autoencoder", model_name=f"trajloom-vae-{preset}", config=dict(pipe.vae.config),
            num_parameters=n(pipe.vae), results_json=results_json, record=record, method="TrajLoom",
            stage_names=[vae_stage])),
        "trajloom_pipeline": (out / "trajloom" / "pipeline", model_card(
            "pipeline", model_name=f"trajloom-{preset}", config=dict(pipe.transformer.config),
            num_parameters=n(pipe.transformer), results_json=results_json, record=record, method="TrajLoom",
            stage_names=[vae_stage, flow_stage, "3/7 TrajLoom: on-policy K-step stage", "3/7 TrajLoom: visibility head"])),
        "visibility_predictor": (out / "trajloom" / "vis" / "visibility_predictor", model_card(
            "visibility", model_name=f"trajloom-visibility-{preset}", config=dict(pipe.visibility_predictor.config),
            num_parameters=n(pipe.visibility_predictor), results_json=results_json, record=record, method="TrajLoom",
            stage_names=["3/7 TrajLoom: visibility head"])),
        "whn_style_baseline": (out / "whn" / "pipeline", model_card(
            "pipeline", model_name=f"whn-style-baseline-{preset}", config=dict(whn.transformer.config),
            num_parameters=n(whn.transformer), results_json=results_json, record=record, method="WHN-style",
            stage_names=["2/7 WHN-style baseline: AutoencoderTraj", "3/7 WHN-style baseline: TrajFlowTransformer"],
            notes="This is the **baseline**, trained with the same budget: conditioned on the first frame only, "
                  "absolute coordinates (`--no_offsets`), no track history (`--history_mode first_frame`), no "
                  "boundary anchoring and no on-policy stage (the paper's WHN comparison, reference `whn-baseline.md`).")),
    }
    for name, (folder, text) in cards.items():
        write_model_card(folder / "README.md", text)
        write_model_card(out / "model_cards" / f"{name}.md", text)
    return out / "model_cards"


def assemble(d: Path, flow_dir: Path, history_mode: str, with_vis: bool):
    from trajloom_hf import AutoencoderTraj, FlowMatchTrajScheduler, TrajFlowTransformer, TrajLoomPipeline, VisibilityPredictor

    pipe = TrajLoomPipeline(
        vae=AutoencoderTraj.from_pretrained(d / "vae"),
        transformer=TrajFlowTransformer.from_pretrained(flow_dir / "transformer"),
        scheduler=FlowMatchTrajScheduler.from_pretrained(flow_dir / "scheduler"),
        visibility_predictor=VisibilityPredictor.from_pretrained(d / "vis" / "visibility_predictor") if with_vis else None,
        history_mode=history_mode,
    )
    pipe.save_pretrained(d / "pipeline")


def render_examples(out: Path, bench: Path, p) -> list:
    import numpy as np
    import torch

    from trajloom_hf import TrajLoomPipeline
    from trajloom_hf.data.trajloombench import load_trajloombench
    from trajloom_hf.rendering import montage, render_forecast
    from trajloom_hf.video_io import decode_mp4_bytes, save_png, write_gif

    ds = load_trajloombench(str(bench), CONFIG, "test")
    pipes = {name: TrajLoomPipeline.from_pretrained(out / name / "pipeline") for name in ("trajloom", "whn")}
    t = p["frames"]
    paths = []
    for i in range(min(p["gifs"], len(ds))):
        row = ds[i]
        frames = decode_mp4_bytes(bytes(row["video"]))
        tracks, vis = row["tracks"], row["visibility"]
        futures, fvis = [tracks[t : 2 * t]], [vis[t : 2 * t]]
        for pipe in pipes.values():
            res = pipe(tracks[:t], vis[:t], num_inference_steps=p["sample_steps"], generator=[torch.Generator().manual_seed(i)])
            futures.append(res.future_tracks[0, 0])
            fvis.append(res.future_visibility[0, 0])
        video = render_forecast(frames[:t], tracks[:t], vis[:t], np.stack(futures), np.stack(fvis),
                                labels=["ground truth", "TrajLoom", "WHN-style"])
        path = out / "gifs" / f"test_{i:02d}.gif"
        write_gif(path, video, 8)
        save_png(path.with_suffix(".png"), montage(video, 3))
        paths.append(path)
    return paths


if __name__ == "__main__":
    main()
