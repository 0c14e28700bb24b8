"""The main job (``make quickstart``), top to bottom, on a CPU.

1. build a small synthetic TrajLoomBench (train / validation / test); as in the paper (§4.1.2: AllTracker tracks for
   all data, synthetic Kubric included) the tracks come from a tracker run on the rendered frames, here the embedded
   optical-flow tracker, not from the scene geometry,
2. train AutoencoderTraj and compute its latent statistics,
3. train TrajFlowTransformer, then the on-policy K-step stage, then the visibility head,
4. save the whole TrajLoomPipeline with ``save_pretrained``,
5. train, with the same budget, a WHN-style baseline (first frame only, absolute coordinates, no track history),
   (its VAE and flow train next to TrajLoom's, one core each; the on-policy stage and the head then get both),
6. ``trajloom evaluate`` on the held-out test split: TrajLoom vs WHN-style vs constant velocity vs static,
7. write ``results.md`` with that table and GIFs of history + forecasts for a few test clips,
8. write Hugging Face model cards (``README.md``) into the saved folders and ``model_cards/``, with the measured numbers.

Every stage is a call of the package's own scripts and CLI, and is skipped when its output exists, so re-running
resumes (the training scripts themselves also resume from their latest checkpoint).

    python examples/quickstart.py --preset cpu      # the full run (see PRESETS for its budget)
    python examples/quickstart.py --preset smoke    # a few minutes; what CI runs
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

HERE = Path(__file__).resolve().parent
CONFIG = "synthetic_tracked"
TRAINING_PHASE = "2-3/7 VAE + flow of both models, concurrently (wall time)"  # the bench config: synthetic scenes, tracks from the embedded tracker

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
        vae_steps=600, flow=dict(hidden_size=96, num_heads=4, num_layers=4), flow_steps=800, on_policy_steps=100,
        vis_steps=200, batch=8, samples=4, sample_steps=10, gifs=3,
    ),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", default="quickstart_out")
    return parser.parse_args()


class StageRunner:
    """Runs stages (subprocesses) and records each one's command line and wall time in ``log`` (for the model cards).

    Stages may run from two threads at once (the two models train concurrently). A stage started while another chain
    is running gets ``OMP_NUM_THREADS=1`` and writes its output (tqdm bars) to ``logs/<stage>.log``; the quickstart
    shows one progress bar over all training steps instead, read from the scripts' ``logs/*/metrics.csv``.
    """

    def __init__(self, log: Path, logs_dir: Path):
        self.log, self.logs_dir = log, logs_dir
        self.lock = threading.Lock()
        self.chains = 0  # training chains running now; while > 0, stage output goes to log files
        self.tracked = []  # (done marker, output_dir, steps) of the training stages, for the progress bar
        self.procs = set()  # running subprocesses (to stop the other chain when one fails)
        self.stopped = False
        self.ran = []  # titles of the stages run by this invocation

    def run(self, title, done: Path, cmd, steps_in=None):
        """Run ``cmd`` unless ``done`` exists. ``steps_in = (output_dir, max_steps)`` registers a training stage."""
        if steps_in is not None:
            with self.lock:
                self.tracked.append((done, *steps_in))
        if done.exists():
            say(f"[skip] {title} (found {done})")
            return
        with self.lock:
            if self.stopped:
                raise RuntimeError(f"stage {title!r} not started: another stage failed")
            quiet, share = self.chains > 0, self.chains > 1
        env = {**os.environ, "OMP_NUM_THREADS": "1"} if share else None
        where = f" ({'one core, ' if share else ''}output in {self._log_file(title)})" if quiet else ""
        say(f"[run ] {title}{where}")
        t0 = time.time()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(self._log_file(title), "w") if quiet else open(os.devnull) as fh:
            proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=fh if quiet else None,
                                    stderr=subprocess.STDOUT if quiet else None)
            with self.lock:
                self.procs.add(proc)
            code = proc.wait()
            with self.lock:
                self.procs.discard(proc)
        if code != 0:
            raise RuntimeError(f"stage {title!r} failed (exit {code})" + (f"; see {self._log_file(title)}" if quiet else ""))
        seconds = time.time() - t0
        say(f"[done] {title} in {seconds:.0f} s")
        # as typed from the repository root with the default --out (log is <out>/<preset>/stages.json), for the cards
        shown = ["python" if c == sys.executable else
                 str(c).replace(str(HERE.parent) + "/", "").replace(str(self.log.parent.parent), "quickstart_out") for c in cmd]
        self.ran.append(title)
        self.record(title, {"command": " ".join(shown), "seconds": seconds, "concurrent": quiet, "one_core": share})

    def record(self, title: str, entry: dict) -> None:
        with self.lock:
            record = json.loads(self.log.read_text()) if self.log.exists() else {}
            record[title] = entry
            write_json(self.log, record)

    def stop(self) -> None:
        """Terminate every running stage (after another one failed)."""
        with self.lock:
            self.stopped = True
            for proc in self.procs:
                proc.terminate()

    def _log_file(self, title: str) -> Path:
        return self.logs_dir / ("".join(c if c.isalnum() else "_" for c in title).strip("_") + ".log")

    def steps_done(self) -> int:
        """Training steps finished so far, summed over the registered stages (the last logged step of each)."""
        total = 0
        with self.lock:
            tracked = list(self.tracked)
        for done, folder, max_steps in tracked:
            if done.exists():
                total += max_steps
                continue
            for path in Path(folder).glob("logs/*/metrics.csv"):
                try:
                    with open(path, newline="") as fh:
                        steps = [int(float(r["step"])) for r in csv.DictReader(fh) if r.get("step")]
                    total += min(max(steps, default=0), max_steps)
                except (OSError, ValueError, KeyError):
                    pass
        return total


def total_minutes(log: Path) -> float:
    """Wall time of the run in minutes: the sequential stages plus the concurrent training phase (``stages.json``)."""
    stages = json.loads(log.read_text())
    return sum(st["seconds"] for st in stages.values() if not st.get("concurrent")) / 60


def say(line: str) -> None:
    """Print a status line without breaking a progress bar that another thread is drawing."""
    tqdm.write(line)
    sys.stdout.flush()


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

    runner = StageRunner(log, out / "logs")

    # 1. data
    runner.run("1/7 synthetic TrajLoomBench", bench / "README.md", trajloom + [
        "bench", "build", "--source", "synthetic", "--tracker", "optical_flow", "--out", bench, "--config", CONFIG,
        "--num-train", p["train"], "--num-validation", p["validation"], "--num-test", p["test"],
        "--height", p["height"], "--width", p["width"], "--stride", p["stride"],
        "--history-frames", p["frames"], "--future-frames", p["frames"], "--shard-size", 32])
    common = ["--bench", bench, "--bench_config", CONFIG, "--train_batch_size", p["batch"], "--report_to", "csv"]
    geometry = ["--height", p["height"], "--width", p["width"], "--stride", p["stride"], "--num_frames", p["frames"]]
    flow_cfg = write_json(out / "configs" / "transformer.json", p["flow"])
    vae_cfg = write_json(out / "configs" / "vae.json", p["vae"])

    def train(name: str):
        """One model's VAE and flow (the WHN-style baseline is then complete and saved as a pipeline)."""
        vae_extra, flow_extra = {
            "trajloom": ([], []),
            "whn": (["--no_offsets"], ["--history_mode", "first_frame", "--no_anchor", "--no_history_visibility"]),
        }[name]
        label = "TrajLoom" if name == "trajloom" else "WHN-style baseline"
        d = out / name
        runner.run(f"2/7 {label}: AutoencoderTraj", d / "vae" / "config.json", [
            py, HERE / "train_autoencoder_traj.py", "--output_dir", d / "vae", "--model_config", vae_cfg, *geometry,
            *common, "--learning_rate", 2e-3, "--lr_warmup_steps", 10, "--max_train_steps", p["vae_steps"],
            "--validation_steps", p["vae_steps"], "--checkpointing_steps", max(10, p["vae_steps"] // 4),
            "--resume_from_checkpoint", "latest", *vae_extra], steps_in=(d / "vae", p["vae_steps"]))
        runner.run(f"3/7 {label}: TrajFlowTransformer", d / "flow" / "transformer" / "config.json", [
            py, HERE / "train_trajloom_flow.py", "--vae_path", d / "vae", "--output_dir", d / "flow",
            "--transformer_config", flow_cfg, *common, "--learning_rate", 1e-3, "--max_train_steps", p["flow_steps"],
            "--validation_steps", 0, "--checkpointing_steps", max(10, p["flow_steps"] // 4),
            "--latent_cache_dir", d / "latents", "--resume_from_checkpoint", "latest", *flow_extra],
            steps_in=(d / "flow", p["flow_steps"]))
        if name == "whn" and not (d / "pipeline" / "model_index.json").exists():
            say("[run ] 4/7 WHN-style baseline: save the TrajLoomPipeline")
            assemble(d, d / "flow", history_mode="first_frame", with_vis=False)

    def chain(name: str):
        try:
            train(name)
        finally:
            with runner.lock:
                runner.chains -= 1

    # 2.-3. the two models' VAE and flow train concurrently, one core each: at these sizes two single-threaded
    # processes get 1.2-1.4x the throughput of one process on two threads (measured: 40 VAE steps 31 s alone on 2
    # threads, 47 s each for two at once). Their work is the same size, so both finish together.
    total_steps = 2 * (p["vae_steps"] + p["flow_steps"])
    runner.chains = 2
    t_train = time.time()
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(chain, name) for name in ("trajloom", "whn")]
        with tqdm(total=total_steps, desc="VAE + flow (both models at once)", unit="step") as bar:
            while not all(j.done() for j in jobs):
                if any(j.done() and j.exception() for j in jobs):
                    runner.stop()  # one model failed: stop the other instead of training it to the end
                time.sleep(2.0)
                bar.n = runner.steps_done()
                bar.refresh()
            bar.n = runner.steps_done()
            bar.refresh()
        for j in jobs:
            j.result()  # re-raise a failed stage
    if any(title.startswith(("2/7", "3/7")) for title in runner.ran):  # wall time of the invocation that trained
        runner.record(TRAINING_PHASE, {"command": "the VAE and flow stages of both models, two at a time",
                                       "seconds": time.time() - t_train, "concurrent": False, "one_core": False})

    # 3. TrajLoom only, on both cores: the on-policy K-step stage and the visibility head; 4. the saved pipeline
    d = out / "trajloom"
    runner.run("3/7 TrajLoom: on-policy K-step stage", d / "flow_on_policy" / "transformer" / "config.json", [
        py, HERE / "train_trajloom_flow.py", "--vae_path", d / "vae", "--output_dir", d / "flow_on_policy",
        "--init_transformer", d / "flow" / "transformer", *common, "--on_policy", "--learning_rate", 2e-4,
        "--on_policy_batch_size", p["batch"], "--max_train_steps", p["on_policy_steps"], "--validation_steps", 0,
        "--checkpointing_steps", max(5, p["on_policy_steps"] // 2), "--latent_cache_dir", d / "latents",
        "--resume_from_checkpoint", "latest"])
    runner.run("3/7 TrajLoom: visibility head", d / "vis" / "visibility_predictor" / "config.json", [
        py, HERE / "train_visibility_predictor.py", "--vae_path", d / "vae", "--output_dir", d / "vis", *common,
        "--learning_rate", 2e-3, "--max_train_steps", p["vis_steps"], "--lr_warmup_steps", 5, "--validation_steps", 0,
        "--checkpointing_steps", max(5, p["vis_steps"] // 2), "--resume_from_checkpoint", "latest"])
    if not (d / "pipeline" / "model_index.json").exists():
        say("[run ] 4/7 TrajLoom: save the TrajLoomPipeline")
        assemble(d, d / "flow_on_policy", history_mode="tracks", with_vis=True)

    # 6. evaluation
    results = out / "results"
    runner.run("6/7 trajloom evaluate (test split)", results / "results.json", trajloom + [
        "evaluate", "--pipeline", out / "trajloom" / "pipeline", "--baseline", f"WHN-style={out / 'whn' / 'pipeline'}",
        "--bench", bench, "--config", CONFIG, "--split", "test", "--num-samples", p["samples"],
        "--steps", p["sample_steps"], "--out", results])

    # 7. pictures and results.md
    print("[run ] 7/7 GIFs and results.md", flush=True)
    gifs = render_examples(out, bench, p)
    table = (results / "results.md").read_text()
    md = [f"# trajloom-hf quickstart ({args.preset} preset)", "",
          f"Synthetic TrajLoomBench (tracks from the embedded optical-flow tracker, as the paper's AllTracker protocol) at {p['height']}x{p['width']} (stride {p['stride']}), {p['frames']} history + "
          f"{p['frames']} future frames; {p['train']} training and {p['test']} test clips. Training and evaluation "
          f"took {total_minutes(log):.1f} min on this machine "
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
    # the folders as typed from the repository root with the default --out (like the stage commands)
    shown = lambda folder: str(folder).replace(str(out.parent), "quickstart_out")  # noqa: E731
    cards = {
        "autoencoder_traj": (out / "trajloom" / "vae", model_card(
            "autoencoder", model_name=f"trajloom-vae-{preset}", config=dict(pipe.vae.config),
            num_parameters=n(pipe.vae), results_json=results_json, record=record, method="TrajLoom",
            stage_names=[vae_stage], load_path=shown(out / "trajloom" / "vae"))),
        "trajloom_pipeline": (out / "trajloom" / "pipeline", model_card(
            "pipeline", model_name=f"trajloom-{preset}", config=dict(pipe.transformer.config),
            num_parameters=n(pipe.transformer), results_json=results_json, record=record, method="TrajLoom",
            stage_names=[vae_stage, flow_stage, "3/7 TrajLoom: on-policy K-step stage", "3/7 TrajLoom: visibility head"],
            load_path=shown(out / "trajloom" / "pipeline"))),
        "visibility_predictor": (out / "trajloom" / "vis" / "visibility_predictor", model_card(
            "visibility", model_name=f"trajloom-visibility-{preset}", config=dict(pipe.visibility_predictor.config),
            num_parameters=n(pipe.visibility_predictor), results_json=results_json, record=record, method="TrajLoom",
            stage_names=["3/7 TrajLoom: visibility head"],
            load_path=shown(out / "trajloom" / "vis" / "visibility_predictor"))),
        "whn_style_baseline": (out / "whn" / "pipeline", model_card(
            "pipeline", model_name=f"whn-style-baseline-{preset}", config=dict(whn.transformer.config),
            num_parameters=n(whn.transformer), results_json=results_json, record=record, method="WHN-style",
            stage_names=["2/7 WHN-style baseline: AutoencoderTraj", "3/7 WHN-style baseline: TrajFlowTransformer"],
            load_path=shown(out / "whn" / "pipeline"),
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
    from trajloom_hf.rendering import forecast_keyframes, montage, render_forecast
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
        # the still: now, half-way and the end of the future, one row each (panels stay readable in the README)
        save_png(path.with_suffix(".png"), montage(video, indices=forecast_keyframes(t, len(futures[0]))))
        paths.append(path)
    return paths


if __name__ == "__main__":
    main()
