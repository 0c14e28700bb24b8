"""The main job (``make quickstart``), top to bottom, on a CPU.

1. build a small TrajLoomBench (train / validation / test): by default the MuJoCo physics source with a moving camera
   (``--bench physics_camera``: rigid objects thrown onto a floor, exact tracks). ``physics`` is the static-camera
   (MOVi-A-like) config: at this clip length the objects are at rest by the future window (the static baseline's ADE
   is about 1 px), so it cannot separate the methods; ``synthetic_tracked`` is the 2-D synthetic source (textured
   shapes under camera motion) with tracks from the embedded optical-flow tracker, as the paper tracks all its data
   (§4.1.2); ``physics_launch`` holds launch scenes (objects still through the history, pushed at the forecast start
   the way their colour points), where only a model that reads the frames can know the future,
2. train AutoencoderTraj and compute its latent statistics (one for TrajLoom, one in absolute coordinates for the
   WHN-style baseline),
3. train TrajFlowTransformer three times with the same budget: TrajLoom seeing the video (a FrameEncoder trained
   jointly, one frame per history latent step), TrajLoom without video (same VAE, only the flow differs), and the
   WHN-style image baseline (appearance only: the frame at the forecast start through its own FrameEncoder, the
   points' positions and visibility at that frame, no motion history, absolute coordinates, no boundary anchoring);
   then the on-policy K-step stage of both TrajLoom flows and the visibility head (shared: it reads the VAE latents),
4. save the TrajLoomPipelines with ``save_pretrained``,
5. choose each generator's boundary continuity (``trajloom choose-continuity``: the tau of the pixel-space join of
   its decoded window onto the history with the lowest minADE@K on the validation split, README "Boundary
   continuity"; the same forecast also scores the visibility head against holding each point's last history
   visibility, the reading the pipelines keep) and save the pipeline with it (``<method>/pipeline``; the one without
   it is ``pipeline_unjoined``);
   the stages of 2-5 run as a dependency graph on two workers, one core each,
6. ``trajloom evaluate`` on the held-out test split: TrajLoom (with / without video) vs WHN-style vs constant velocity
   vs static (Euler x 10 steps for every generator, WHN's sampler); and on the validation split with
   ``--shuffle-frames``: the frame-conditioned models again with every clip given another clip's frames (a model that
   uses the image must get worse),
7. write ``results.md`` with those tables and GIFs of history + forecasts for a few test clips,
8. write Hugging Face model cards (``README.md``) into the saved folders and ``model_cards/``, with the measured numbers.

Every stage is a call of the package's own scripts and CLI, and is skipped when its output exists, so re-running
resumes (the training scripts themselves also resume from their latest checkpoint). A rerun on the same machine
reproduces every number bit for bit: all stages are seeded from ``--seed`` and each runs on a thread count fixed by
the plan (``--threads``), never by what else happens to be running. ``stages.json`` records each stage's command,
wall and CPU time and thread count; one progress bar estimates the time left from the stages' measured step rates.

    python examples/quickstart.py --preset cpu                # the full run (see PRESETS for its budget)
    python examples/quickstart.py --preset smoke              # a few minutes; what CI runs
    python examples/quickstart.py --preset cpu --seeds 0 1 2  # three seeds, then seed_spread.md (mean ± std)
    python examples/quickstart.py --bench synthetic_tracked   # the 2-D source (output in quickstart_out/cpu_synthetic_tracked)
    python examples/quickstart.py --preset cpu --seeds 0 1 --ablations 0 1  # + the ablations of Tables 3-5, 2 seeds
"""

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from tqdm.auto import tqdm

from trajloom_hf.progress_estimate import StageClock, format_duration, remaining_seconds

HERE = Path(__file__).resolve().parent

# bench presets: config name -> (description, `trajloom bench build` arguments)
BENCHES = {
    "physics": ("a MuJoCo physics TrajLoomBench (rigid objects thrown onto a floor, static camera; exact tracks)",
                ["--source", "physics"]),
    "physics_camera": ("a MuJoCo physics TrajLoomBench (rigid objects thrown onto a floor, moving camera; exact tracks)",
                       ["--source", "physics", "--camera", "moving"]),
    "physics_camera_tracked": ("a MuJoCo physics TrajLoomBench (rigid objects thrown onto a floor, moving camera) tracked "
                               "on its renders with the embedded optical-flow tracker (the paper's protocol, §4.1.2)",
                               ["--source", "physics", "--camera", "moving", "--tracker", "optical_flow"]),
    "physics_launch": ("a MuJoCo physics TrajLoomBench of launch scenes (objects at rest through the history, pushed at the "
                       "forecast start the way their colour points; static camera, exact tracks): the future is written "
                       "only in the appearance", ["--source", "physics", "--launch"]),
    "synthetic_tracked": ("a synthetic 2-D TrajLoomBench (textured shapes under camera motion) tracked with the embedded "
                          "optical-flow tracker", ["--source", "synthetic", "--tracker", "optical_flow"]),
}
DEFAULT_BENCH = "physics_camera"
CONFIG = DEFAULT_BENCH  # the bench config of this run (set from --bench)
TRAINING_PHASE = "2-3/7 VAE + flow of the three generators, two at a time (wall time)"
FLOW_PHASE = "3/7 TrajLoom (no video) flow and the on-policy stage of TrajLoom (video), two at a time (wall time)"
CHOICE_PHASE = "3/7 + 5/7 on-policy stage of TrajLoom (no video) and the choice of boundary continuity (wall time)"
UNJOINED = "pipeline_unjoined"  # each generator's pipeline before its boundary continuity is chosen (tau 0)
# the methods of the results table: folder under the run -> results.json row
METHODS = {"trajloom": "TrajLoom", "trajloom_novideo": "TrajLoom (no video)", "whn": "WHN-style"}
# ablations of Tables 3-5 (``--ablations``): folder under RUN/ablations -> row name
ABLATIONS = {"no_offsets": "w/o offsets", "no_regulariser": "w/o regulariser", "no_anchor": "w/o anchoring",
             "no_fusion": "w/o fusion", "no_on_policy": "w/o on-policy"}
TRAINING_SEED = 42  # the training scripts' default seed; --seed S trains with TRAINING_SEED + S, samples with S

# eta: idle-machine priors of the progress bar's estimate, per kind of stage: (seconds per step, start-up seconds);
# measured on this 2-core machine (cpu: the README run's stages.json). Once a stage has run a few steps its own
# rate replaces the prior, and the measured/prior ratio scales the stages still to come (progress_estimate).
PRESETS = {
    "smoke": dict(
        height=80, width=96, stride=16, frames=9, train=8, validation=2, test=4,
        vae=dict(hidden_size=32, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=4, pos_embed_dim=8),
        vae_steps=24, flow=dict(hidden_size=32, num_heads=4, num_layers=2), flow_steps=20, on_policy_steps=4,
        frame_encoder=dict(out_channels=8, hidden_channels=8, cell_px=4),
        vis_steps=16, batch=4, samples=2, sample_steps=4, gifs=2,
        eta=dict(bench=(0, 5), vae=(0.25, 8), flow=(0.15, 6), on_policy=(3.0, 10), vis=(0.5, 8), save=(0, 2),
                 evaluate=(0, 10), choose=(0, 8), render=(0, 10), cards=(0, 5), spread=(0, 1)),
    ),
    "cpu": dict(
        height=96, width=160, stride=16, frames=33, train=160, validation=16, test=32,
        vae=dict(hidden_size=64, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=8, pos_embed_dim=16),
        vae_steps=400, flow=dict(hidden_size=96, num_heads=4, num_layers=4), flow_steps=600, on_policy_steps=40,
        frame_encoder=dict(out_channels=16, hidden_channels=32, cell_px=8),
        vis_steps=150, batch=8, samples=4, sample_steps=10, gifs=3,
        eta=dict(bench=(0, 102), vae=(0.98, 15), flow=(0.58, 20), on_policy=(3.1, 10), vis=(0.25, 10), save=(0, 3),
                 evaluate=(0, 48), choose=(0, 40), render=(0, 30), cards=(0, 8), spread=(0, 1)),
    ),
}


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", default="quickstart_out")
    parser.add_argument("--bench", choices=sorted(BENCHES), default=DEFAULT_BENCH,
                        help="the benchmark source (default: MuJoCo physics, moving camera); a non-default bench runs "
                             "in OUT/PRESET_BENCH")
    parser.add_argument("--seed", type=int, default=0,
                        help=f"every stage's seed derives from it (training: {TRAINING_SEED} + seed, sampling: seed); "
                             "seed 0 writes OUT/PRESET, seed S OUT/PRESET-seedS (the benchmark is shared)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="run every seed in turn and write OUT/PRESET/seed_spread.md (mean ± std, and which "
                             "differences exceed the spread); at least two seeds")
    parser.add_argument("--threads", type=int, default=available_cores(),
                        help="CPU threads of every sequential stage; the two models' concurrent stages get "
                             "threads // 2 each (default: the cores available). Fixed per stage, whatever the timing, "
                             "so a rerun on the same machine reproduces the numbers bit for bit")
    parser.add_argument("--ablations", type=int, nargs="+", default=None, metavar="SEED",
                        help="also train and evaluate the ablations of Tables 3-5 (w/o offsets, regulariser, "
                             "anchoring, fusion, on-policy; same budget) for these seeds of the run, after their main "
                             "stages (RUN/ablations/ablations.md); with two or more, ablation_spread.md")
    parser.add_argument("--ablation-variants", nargs="+", choices=list(ABLATIONS), default=list(ABLATIONS),
                        metavar="NAME", help=f"which ablations to run (default all: {' '.join(ABLATIONS)})")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.seeds is not None:
        if len(set(args.seeds)) < 2:
            parser.error(f"--seeds needs at least two different seeds, got {args.seeds}")
        if any(s < 0 for s in args.seeds):
            parser.error(f"--seeds must be >= 0, got {args.seeds}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    args.run_seeds = args.seeds if args.seeds is not None else [args.seed]  # the seeds this invocation runs
    if args.ablations is not None and not set(args.ablations) <= set(args.run_seeds):
        parser.error(f"--ablations seeds must be seeds of this run ({args.run_seeds}), got {args.ablations}")
    return args


def run_dir(out: Path, preset: str, seed: int) -> Path:
    """The folder of one seed's run: ``out/preset`` for seed 0 (the default run), ``out/preset-seedS`` otherwise
    (``preset_BENCH`` instead of ``preset`` for a bench other than the default)."""
    name = preset if CONFIG == DEFAULT_BENCH else f"{preset}_{CONFIG}"
    return out / (name if seed == 0 else f"{name}-seed{seed}")


def thread_env(threads: int) -> dict:
    """Environment that fixes every thread pool torch may use on a CPU (OpenMP, MKL, OpenBLAS) to ``threads``.

    fp32 reductions and matrix products split their work by thread count, so a stage's result depends on it: it
    must never depend on what else happens to be running (measured: the smoke VAE trained on 1 and on 2 threads
    gives different weights; on a fixed count, identical weights whether alone or next to another run)."""
    n = str(int(threads))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_DYNAMIC": "FALSE"}


@dataclass
class Stage:
    """One stage: a subprocess ``cmd`` or an in-process ``fn``, skipped when ``done`` exists (``None``: always run)
    and is newer than every file in ``inputs`` (a report is remade when what it reports on was redone).

    ``steps``: its training steps, counted from ``folder/logs/*/metrics.csv`` for the progress bar; ``kind``: the
    key of its prior in the preset's ``eta``."""

    title: str
    done: Optional[Path]
    kind: str
    cmd: Optional[list] = None
    fn: Optional[Callable[[], None]] = None
    steps: int = 0
    folder: Optional[Path] = None
    log: Optional[Path] = None  # the stages.json to record it in
    clock: Optional[StageClock] = None
    inputs: tuple = ()

    def is_done(self) -> bool:
        if self.done is None or not self.done.exists():
            return False
        made = self.done.stat().st_mtime
        return all(Path(f).exists() and Path(f).stat().st_mtime <= made for f in self.inputs)


@dataclass
class Phase:
    """Chains of stages that run at the same time (each chain in order); ``title`` names the phase's wall time."""

    chains: List[List[Stage]]
    title: Optional[str] = None
    log: Optional[Path] = None


class StageRunner:
    """Runs phases of stages, records each stage's command, wall and CPU time and thread count in ``stages.json``
    (for the model cards), and draws one progress bar over the whole run with an estimate of the time left.

    Thread counts are a function of the plan, never of timing: the stages of a phase with ``k`` chains get
    ``threads // k`` threads each, the others ``threads``. Every stage writes its output (the scripts' own tqdm bars)
    to ``logs/<stage>.log``; the bar counts the training steps the scripts log to their ``metrics.csv``.
    """

    def __init__(self, threads: int, priors: dict, poll_s: float = 2.0, progress: bool = True):
        self.threads, self.priors, self.poll_s, self.progress = threads, priors, poll_s, progress
        self.lock = threading.Lock()
        self.procs = set()  # running subprocesses (to stop the other chains when one fails)
        self.stopped = False
        self.ran = []  # titles of the stages run by this invocation
        self.phases: List[Phase] = []

    # -- the plan and the progress bar ----------------------------------------------------------------------------
    def execute(self, phases: List[Phase]) -> None:
        """Run ``phases`` in order (a failed stage stops the others and raises)."""
        self.phases = phases
        for st in self.stages():
            spp, overhead = self.priors.get(st.kind, (0.0, 0.0))
            st.clock = StageClock(st.steps, spp, overhead)
        done = threading.Event()
        monitor = threading.Thread(target=self._monitor, args=(done,), daemon=True)
        monitor.start()
        try:
            for phase in phases:
                self._run_phase(phase)
        finally:
            done.set()
            monitor.join()

    def stages(self) -> List[Stage]:
        return [st for phase in self.phases for chain in phase.chains for st in chain]

    def eta_seconds(self, now: float) -> float:
        return remaining_seconds([[[st.clock for st in chain] for chain in ph.chains] for ph in self.phases], now)

    def _monitor(self, done: threading.Event) -> None:
        total = sum(st.steps for st in self.stages())
        fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}{postfix}]"
        with tqdm(total=total, desc="quickstart", unit="step", bar_format=fmt, disable=not self.progress) as bar:
            while True:
                finished = done.wait(self.poll_s)
                now = time.time()
                running = []
                for st in self.stages():
                    if st.clock.started_at is not None and st.clock.finished_at is None:
                        running.append(st.title)
                        if st.folder is not None:
                            st.clock.observe(now, steps_logged(st.folder, st.steps))
                bar.n = sum(st.clock.steps_done for st in self.stages())
                bar.set_postfix_str(f"~{format_duration(self.eta_seconds(now))} left; {' + '.join(running) or '...'}",
                                    refresh=False)
                bar.refresh()
                if finished:
                    return

    # -- running ----------------------------------------------------------------------------------------------
    def _run_phase(self, phase: Phase) -> None:
        if len(phase.chains) == 1:
            self._run_chain(phase.chains[0], self.threads, concurrent=False)
            return
        threads = max(1, self.threads // len(phase.chains))
        t0 = time.time()
        with ThreadPoolExecutor(len(phase.chains)) as pool:
            jobs = [pool.submit(self._run_chain, chain, threads, True) for chain in phase.chains]
            while not all(j.done() for j in jobs):
                if any(j.done() and j.exception() for j in jobs):
                    self.stop()  # one chain failed: stop the others instead of training them to the end
                time.sleep(0.5)
            for j in jobs:
                j.result()  # re-raise a failed stage
        titles = {st.title for chain in phase.chains for st in chain}
        ran = titles & set(self.ran)
        if phase.title and ran:  # the wall time of the invocation that trained
            seconds, resumed = time.time() - t0, ran != titles
            if resumed:  # some stages were done by an earlier invocation: the slowest chain's recorded stage times
                seconds = phase_seconds(phase.log, phase.chains)
            record(phase.log, phase.title, {"command": "the stages of " + " and ".join(
                f"chain {i + 1} ({', '.join(st.title for st in chain)})" for i, chain in enumerate(phase.chains)),
                "seconds": seconds, "concurrent": False, "one_core": False, "threads": self.threads,
                "resumed": resumed})

    def _run_chain(self, chain: List[Stage], threads: int, concurrent: bool) -> None:
        for st in chain:
            self.run(st, threads, concurrent)

    def run(self, st: Stage, threads: int, concurrent: bool = False) -> None:
        """Run one stage on ``threads`` threads unless its ``done`` marker exists."""
        if st.is_done():
            say(f"[skip] {st.title} (found {st.done})")
            st.clock.finished_at = time.time()
            return
        with self.lock:
            if self.stopped:
                raise RuntimeError(f"stage {st.title!r} not started: another stage failed")
        log_file = self.log_file(st)
        t0, self_t0 = time.time(), _cpu(resource.RUSAGE_SELF)
        st.clock.started_at = t0
        if st.cmd is None:
            say(f"[run ] {st.title}")
            st.fn()
            cpu = _cpu(resource.RUSAGE_SELF) - self_t0
        else:
            say(f"[run ] {st.title} ({threads} thread{'s' * (threads > 1)}; output in {log_file})")
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(log_file, "w") as fh:
                proc = subprocess.Popen([str(c) for c in st.cmd], env={**os.environ, **thread_env(threads)},
                                        stdout=fh, stderr=subprocess.STDOUT)
                with self.lock:
                    self.procs.add(proc)
                code, cpu = wait_with_cpu(proc)
                with self.lock:
                    self.procs.discard(proc)
            if code != 0:
                raise RuntimeError(f"stage {st.title!r} failed (exit {code}); see {log_file}:\n" + tail(log_file))
        seconds = time.time() - t0
        st.clock.finished_at = time.time()
        say(f"[done] {st.title} in {seconds:.0f} s (CPU {cpu:.0f} s)")
        self.ran.append(st.title)
        if st.log is not None and st.cmd is not None:
            record(st.log, st.title, {"command": shown_command(st.cmd, st.log, threads), "seconds": seconds,
                                      "cpu_seconds": cpu, "threads": threads, "concurrent": concurrent,
                                      "one_core": concurrent and threads == 1})

    def stop(self) -> None:
        """Terminate every running stage (after another one failed)."""
        with self.lock:
            self.stopped = True
            for proc in self.procs:
                proc.terminate()

    def log_file(self, st: Stage) -> Path:
        root = st.log.parent if st.log is not None else Path(".")
        return root / "logs" / ("".join(c if c.isalnum() else "_" for c in st.title).strip("_") + ".log")


def _cpu(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def wait_with_cpu(proc: subprocess.Popen):
    """Wait for ``proc``; returns ``(exit code, user + sys CPU seconds of it and its waited-for children)``.

    ``os.wait4`` gives the resource usage of that one child, so stages running at the same time are told apart
    (``getrusage(RUSAGE_CHILDREN)`` sums all of them)."""
    if not hasattr(os, "wait4"):
        before = _cpu(resource.RUSAGE_CHILDREN)
        code = proc.wait()
        return code, _cpu(resource.RUSAGE_CHILDREN) - before
    while True:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            break
        except InterruptedError:
            continue
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def steps_logged(folder: Path, max_steps: int) -> int:
    """The last training step a script logged under ``folder/logs/*/metrics.csv`` (at most ``max_steps``)."""
    best = 0
    for path in Path(folder).glob("logs/*/metrics.csv"):
        try:
            with open(path, newline="") as fh:
                steps = [int(float(r["step"])) for r in csv.DictReader(fh) if r.get("step")]
            best = max(best, max(steps, default=0))
        except (OSError, ValueError, KeyError):
            pass
    return min(best, max_steps)


def shown_command(cmd, log: Path, threads: int) -> str:
    """``cmd`` as typed from the repository root with the default --out (log is <out>/<run>/stages.json)."""
    shown = ["python" if c == sys.executable else
             str(c).replace(str(HERE.parent) + "/", "").replace(str(log.parent.parent), "quickstart_out") for c in cmd]
    return f"OMP_NUM_THREADS={threads} " + " ".join(shown)


_RECORD_LOCK = threading.Lock()


def record(log: Path, title: str, entry: dict) -> None:
    """Set ``title``'s entry of the stages.json ``log``."""
    with _RECORD_LOCK:
        stages = json.loads(log.read_text()) if log.exists() else {}
        stages[title] = entry
        write_json(log, stages)


def phase_seconds(log: Path, chains) -> float:
    """Wall seconds of a phase resumed across invocations: its chains run side by side, so the longest chain's sum
    of the stage times recorded in ``log`` (each stage's from the invocation that ran it)."""
    stages = json.loads(log.read_text()) if log.exists() else {}
    return max(sum(stages.get(st.title, {}).get("seconds", 0.0) for st in chain) for chain in chains)


def total_minutes(log: Path) -> float:
    """Wall time of the run in minutes: the sequential stages plus the concurrent training phase (``stages.json``)."""
    stages = json.loads(log.read_text())
    return sum(st["seconds"] for st in stages.values() if not st.get("concurrent")) / 60


def cpu_minutes(log: Path) -> float:
    """CPU time (user + sys) of the run's stages in minutes, summed over the stages that recorded it."""
    return sum(st.get("cpu_seconds", 0.0) for st in json.loads(log.read_text()).values()) / 60


def say(line: str) -> None:
    """Print a status line without breaking a progress bar that another thread is drawing."""
    tqdm.write(line)
    sys.stdout.flush()


def write_json(path: Path, obj) -> Path:
    from trajloom_hf.video_io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1))
    return path


def seed_phases(root: Path, preset: str, seed: int, p: dict, bench: Path, with_bench: bool,
                ablations: Sequence[str] = ()) -> List[Phase]:
    """The stages of one seed's run in ``run_dir(root, preset, seed)`` (the bench stage only with ``with_bench``;
    then the ablations named in ``ablations``, keys of :data:`ABLATIONS`)."""
    out = run_dir(root, preset, seed)
    log = out / "stages.json"
    py = sys.executable
    trajloom = [py, "-m", "trajloom_hf.cli"]
    train_seed = ["--seed", TRAINING_SEED + seed]
    S = lambda *a, **k: Stage(*a, log=log, **k)  # noqa: E731
    phases = []

    # 1. data (shared by every seed)
    if with_bench:
        phases.append(Phase([[Stage(f"1/7 TrajLoomBench ({CONFIG})", bench / "README.md", "bench", trajloom + [
            "bench", "build", *BENCHES[CONFIG][1], "--out", bench, "--config", CONFIG,
            "--num-train", p["train"], "--num-validation", p["validation"], "--num-test", p["test"],
            "--height", p["height"], "--width", p["width"], "--stride", p["stride"],
            "--history-frames", p["frames"], "--future-frames", p["frames"], "--shard-size", 32],
            log=run_dir(root, preset, 0) / "stages.json")]]))
    common = ["--bench", bench, "--bench_config", CONFIG, "--train_batch_size", p["batch"], "--report_to", "csv",
              *train_seed, "--deterministic"]
    geometry = ["--height", p["height"], "--width", p["width"], "--stride", p["stride"], "--num_frames", p["frames"]]
    flow_cfg = write_json(out / "configs" / "transformer.json", p["flow"])
    vae_cfg = write_json(out / "configs" / "vae.json", p["vae"])
    frame_cfg = write_json(out / "configs" / "frame_encoder.json", p["frame_encoder"])
    tl, nv, whn = out / "trajloom", out / "trajloom_novideo", out / "whn"

    def vae(label: str, d: Path, extra=()) -> Stage:
        return S(f"2/7 {label}: AutoencoderTraj", d / "vae" / "config.json", "vae", [
            py, HERE / "train_autoencoder_traj.py", "--output_dir", d / "vae", "--model_config", vae_cfg, *geometry,
            *common, "--learning_rate", 2e-3, "--lr_warmup_steps", 10, "--lr_scheduler", "cosine",
            "--max_train_steps", p["vae_steps"],
            "--validation_steps", p["vae_steps"], "--checkpointing_steps", max(10, p["vae_steps"] // 4),
            "--resume_from_checkpoint", "latest", *extra], steps=p["vae_steps"], folder=d / "vae")

    def flow(label: str, d: Path, vae_dir: Path, latents: Path, extra=(), config: Optional[Path] = None) -> Stage:
        return S(f"3/7 {label}: TrajFlowTransformer", d / "flow" / "transformer" / "config.json", "flow", [
            py, HERE / "train_trajloom_flow.py", "--vae_path", vae_dir, "--output_dir", d / "flow",
            "--transformer_config", config or flow_cfg, *common, "--learning_rate", 1e-3, "--max_train_steps", p["flow_steps"],
            "--validation_steps", 0, "--checkpointing_steps", max(10, p["flow_steps"] // 4),
            "--latent_cache_dir", latents, "--resume_from_checkpoint", "latest", *extra],
            steps=p["flow_steps"], folder=d / "flow")

    def on_policy(label: str, d: Path, extra=(), vae_dir: Optional[Path] = None, latents: Optional[Path] = None) -> Stage:
        return S(f"3/7 {label}: on-policy K-step stage", d / "flow_on_policy" / "transformer" / "config.json", "on_policy", [
            py, HERE / "train_trajloom_flow.py", "--vae_path", vae_dir or tl / "vae", "--output_dir", d / "flow_on_policy",
            "--init_transformer", d / "flow" / "transformer", *common, "--on_policy", "--learning_rate", 2e-4,
            "--on_policy_batch_size", p["batch"], "--max_train_steps", p["on_policy_steps"], "--validation_steps", 0,
            "--checkpointing_steps", max(5, p["on_policy_steps"] // 2), "--latent_cache_dir", latents or tl / "latents",
            "--resume_from_checkpoint", "latest", *extra], steps=p["on_policy_steps"], folder=d / "flow_on_policy")

    def save(d: Path, vae_owner: Path, flow_dir: Path, mode: str, head: bool, name: Optional[str] = None,
             folder: str = "pipeline") -> Stage:
        return S(f"4/7 {name or METHODS[d.name]}: save the TrajLoomPipeline", d / folder / "model_index.json", "save",
                 fn=lambda: assemble(vae_owner, flow_dir, d / folder, history_mode=mode,
                                     vis_dir=tl / "vis" if head else None))

    def choose(d: Path) -> Stage:
        """The boundary-continuity tau of ``d / "pipeline_unjoined"`` with the lowest minADE@K on the validation split
        (the same samples and sampler as the evaluation), saved with it as ``d / "pipeline"``."""
        return S(f"5/7 {METHODS[d.name]}: boundary continuity (validation split)", d / "pipeline" / "model_index.json",
                 "choose", trajloom + [
                     "choose-continuity", "--pipeline", d / "pipeline_unjoined", "--bench", bench, "--config", CONFIG,
                     "--split", "validation", "--num-samples", p["samples"], "--steps", p["sample_steps"],
                     "--seed", seed, "--out", d / "continuity", "--save-pipeline", d / "pipeline",
                     "--keep-visibility"])  # the head is scored on validation (the table) but not switched on

    video = ["--frame_encoder_config", frame_cfg]
    # WHN-style: the forecast-start frame (its image, the points' positions and visibility there), no motion history,
    # absolute coordinates (its own VAE, --no_offsets), no boundary anchoring; same VAE and flow budget as TrajLoom
    whn_flow = ["--history_mode", "last_frame", "--no_anchor", *video]
    vis_head = S("3/7 TrajLoom: visibility head", tl / "vis" / "visibility_predictor" / "config.json", "vis", [
        py, HERE / "train_visibility_predictor.py", "--vae_path", tl / "vae", "--output_dir", tl / "vis", *common,
        "--learning_rate", 2e-3, "--max_train_steps", p["vis_steps"], "--lr_warmup_steps", 5, "--validation_steps", 0,
        "--checkpointing_steps", max(5, p["vis_steps"] // 2), "--resume_from_checkpoint", "latest"],
        steps=p["vis_steps"], folder=tl / "vis")

    # 2.-3. two chains at a time, threads // 2 each (at these sizes two single-threaded processes get 1.2-1.4x the
    # throughput of one on two threads). The VAE + flow of TrajLoom (video) and of WHN-style are the same work; then
    # TrajLoom (no video) (same VAE, only the flow differs) next to the on-policy stage of TrajLoom (video) and the
    # visibility head (shared by both TrajLoom pipelines: it reads the VAE latents); then the last on-policy stage
    phases.append(Phase([[vae("TrajLoom", tl), flow("TrajLoom (video)", tl, tl / "vae", tl / "latents", video)],
                         [vae("WHN-style baseline", whn, ["--no_offsets"]),
                          flow("WHN-style baseline", whn, whn / "vae", whn / "latents", whn_flow),
                          save(whn, whn, whn / "flow", "last_frame", False, folder=UNJOINED)]], title=TRAINING_PHASE,
                        log=log))
    phases.append(Phase([[flow("TrajLoom (no video)", nv, tl / "vae", tl / "latents")],
                         [on_policy("TrajLoom (video)", tl, ["--init_frame_encoder", tl / "flow" / "frame_encoder"]),
                          vis_head, save(tl, tl, tl / "flow_on_policy", "tracks", True, folder=UNJOINED)]],
                        title=FLOW_PHASE, log=log))
    # the last on-policy stage next to the choice of tau of the two generators already saved
    phases.append(Phase([[on_policy("TrajLoom (no video)", nv), save(nv, tl, nv / "flow_on_policy", "tracks", True,
                                                                     folder=UNJOINED), choose(nv)],
                         [choose(tl), choose(whn)]], title=CHOICE_PHASE, log=log))

    # 6. evaluation: the test split, then the validation split with every clip given another clip's frames;
    # 7. pictures and results.md; 8. model cards, from the measured results
    results, shuffled = out / "results", out / "results_shuffled_frames"
    phases.append(Phase([[
        S("6/7 trajloom evaluate (test split)", results / "results.json", "evaluate", trajloom + [
            "evaluate", "--pipeline", tl / "pipeline", "--baseline", f"TrajLoom (no video)={nv / 'pipeline'}",
            "--baseline", f"WHN-style={whn / 'pipeline'}", "--bench", bench, "--config", CONFIG, "--split", "test",
            "--num-samples", p["samples"], "--steps", p["sample_steps"], "--seed", seed, "--oracle", "--out", results]),
        S("6/7 trajloom evaluate --shuffle-frames (validation split)", shuffled / "results.json", "evaluate", trajloom + [
            "evaluate", "--pipeline", tl / "pipeline", "--baseline", f"WHN-style={whn / 'pipeline'}",
            "--bench", bench, "--config", CONFIG, "--split", "validation", "--num-samples", p["samples"],
            "--steps", p["sample_steps"], "--seed", seed, "--shuffle-frames", "--out", shuffled]),
        S("7/7 GIFs and results.md", out / "results.md", "render", fn=lambda: write_results_md(out, bench, preset, seed, p, log),
          inputs=(results / "results.json", shuffled / "results.json")),
        S("8/8 model cards", None, "cards", fn=lambda: write_cards(out, preset, p, log, seed)),
    ]]))
    if not ablations:
        return phases

    # ablations (Tables 3-5, App. D): each TrajLoom (video) chain with one component removed, same budget; the
    # on-policy ablation is the flow from before that stage, and the w/o offsets VAE is the WHN-style baseline's (the
    # same command: absolute coordinates, same seed and thread count, so the same weights). Each flow encodes its own
    # latent cache (a few seconds), so an ablation run never depends on how the main run's cache was written. Two
    # chains at a time
    ab = out / "ablations"
    fe = lambda d: ["--init_frame_encoder", d / "flow" / "frame_encoder"]  # noqa: E731
    no_fusion_cfg = write_json(out / "configs" / "transformer_no_fusion.json", {**p["flow"], "use_history_fusion": False})
    d = {k: ab / k for k in ABLATIONS}
    lab = lambda k: f"ablation {ABLATIONS[k]}"  # noqa: E731  (stage titles)
    first, second = [], []  # VAE-side variants | flows on TrajLoom's VAE
    if "no_offsets" in ablations:
        first += [flow(lab("no_offsets"), d["no_offsets"], whn / "vae", d["no_offsets"] / "latents", video),
                  on_policy(lab("no_offsets"), d["no_offsets"], fe(d["no_offsets"]), whn / "vae", d["no_offsets"] / "latents"),
                  save(d["no_offsets"], whn, d["no_offsets"] / "flow_on_policy", "tracks", False, lab("no_offsets"))]
    if "no_regulariser" in ablations:
        first += [vae(lab("no_regulariser"), d["no_regulariser"], ["--lambda_temporal", 0, "--lambda_spatial", 0])]
    if "no_anchor" in ablations:
        second += [flow(lab("no_anchor"), d["no_anchor"], tl / "vae", d["no_anchor"] / "latents", [*video, "--no_anchor"]),
                   on_policy(lab("no_anchor"), d["no_anchor"], [*fe(d["no_anchor"]), "--no_anchor"], latents=d["no_anchor"] / "latents"),
                   save(d["no_anchor"], tl, d["no_anchor"] / "flow_on_policy", "tracks", True, lab("no_anchor"))]
    if "no_fusion" in ablations:
        second += [flow(lab("no_fusion"), d["no_fusion"], tl / "vae", d["no_fusion"] / "latents", video, config=no_fusion_cfg),
                   on_policy(lab("no_fusion"), d["no_fusion"], fe(d["no_fusion"]), latents=d["no_fusion"] / "latents"),
                   save(d["no_fusion"], tl, d["no_fusion"] / "flow_on_policy", "tracks", True, lab("no_fusion"))]
    if "no_on_policy" in ablations:
        second += [save(d["no_on_policy"], tl, tl / "flow", "tracks", True, lab("no_on_policy"))]
    phases.append(Phase([c for c in (first, second) if c], title="ablations: training (wall time)", log=log))
    # the table scores every ablation of this seed: those trained now and those an earlier invocation trained (a
    # second `--ablation-variants` run adds rows, never drops them); each is re-scored when its weights are newer
    # than the table
    made = {k: d[k] / ("vae/config.json" if k == "no_regulariser" else "pipeline/model_index.json") for k in ABLATIONS}
    kept = [k for k in ABLATIONS if k in ablations or made[k].exists()]  # what each variant's last stage writes
    scored = [k for k in ("no_on_policy", "no_anchor", "no_fusion", "no_offsets") if k in kept]
    pipes = [arg for k in scored for arg in ("--baseline", f"{ABLATIONS[k]}={d[k] / 'pipeline'}")]
    vae_owners = {"TrajLoom": tl, **({ABLATIONS["no_offsets"]: whn} if "no_offsets" in kept else {}),
                  **({ABLATIONS["no_regulariser"]: d["no_regulariser"]} if "no_regulariser" in kept else {})}
    phases.append(Phase([[
        S("ablations: trajloom evaluate (test split)", ab / "results" / "results.json", "evaluate", trajloom + [
            "evaluate", "--pipeline", tl / "pipeline", *pipes, "--bench", bench, "--config", CONFIG, "--split", "test",
            "--num-samples", p["samples"], "--steps", p["sample_steps"], "--seed", seed, "--out", ab / "results",
            "--boundary-continuity", 0],  # the paper's components: every row without the join
          inputs=(tl / "pipeline" / "model_index.json", *(made[k] for k in scored))),
        S("ablations: VAE VEPE (test split) and ablations.md", ab / "ablations.json", "render",
          fn=lambda: write_ablations_md(out, bench, vae_owners),
          inputs=(ab / "results" / "results.json", *(o / "vae" / "config.json" for o in vae_owners.values()))),
    ]]))
    return phases


def quiet_diffusers() -> None:
    """No diffusers progress bars in this process: its stages run under the quickstart's own bar."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()


def write_results_md(out: Path, bench: Path, preset: str, seed: int, p: dict, log: Path) -> None:
    quiet_diffusers()
    gifs = render_examples(out, bench, p)
    table = (out / "results" / "results.md").read_text()
    cores = max((st.get("threads", 0) for st in json.loads(log.read_text()).values()), default=0)
    md = [f"# trajloom-hf quickstart ({preset} preset, seed {seed})", "",
          f"{BENCHES[CONFIG][0][0].upper() + BENCHES[CONFIG][0][1:]} "
          f"at {p['height']}x{p['width']} (stride {p['stride']}), {p['frames']} history + {p['frames']} future frames; "
          f"{p['train']} training and {p['test']} test clips. Training and evaluation took {total_minutes(log):.1f} min "
          f"wall time on this machine and {cpu_minutes(log):.1f} min of CPU time (user + sys, all stages"
          f"{f', {cores} threads' if cores else ''}; per stage: `stages.json`).", "",
          table.split("\n", 2)[-1], "",
          "## Do the frame-conditioned models use the image? (validation split)", "",
          "The same models, with every clip given another clip's frames (tracks unchanged; "
          "`trajloom evaluate --shuffle-frames`): a model that uses the image scores worse in the "
          "\"(other clip's frames)\" rows.", "",
          (out / "results_shuffled_frames" / "results.md").read_text().split("\n", 2)[-1], "",
          "## Boundary continuity, chosen on the validation split, and the visibility readings there", "",
          "Each generator's decoded window is joined onto its history (README \"Boundary continuity\"): `trajloom "
          "choose-continuity` scores one validation forecast with every tau, and the visibility head against holding "
          "each point's last history visibility (the pipelines keep hold-last, README \"Visibility\"), and saves "
          "the pipeline with the lowest "
          "minADE@K (bold); the tables above use it.", "",
          *[f"**{METHODS[m]}**\n\n{continuity_table(out / m)}\n" for m in METHODS],
          "## Forecasts (history, then GT | TrajLoom | TrajLoom (no video) | WHN-style futures)", ""]
    md += [f"![{g.stem}]({g.relative_to(out)})" for g in gifs]
    from trajloom_hf.video_io import atomic_path

    with atomic_path(out / "results.md") as tmp:  # written last: the stage's done marker
        Path(tmp).write_text("\n".join(md) + "\n")


def continuity_table(d: Path) -> str:
    """The tau table ``trajloom choose-continuity`` wrote for the generator in ``d`` (``d/continuity``)."""
    return (d / "continuity" / "continuity.md").read_text().split("\n\n", 2)[-1].strip()


def chosen_tau(d: Path) -> str:
    """The tau (frames, as text) chosen for the generator in ``d``."""
    return json.loads((d / "continuity" / "continuity.json").read_text())["tau"]


def visibility_note(d: Path) -> str:
    """How the pipeline in ``d`` reads future visibility (the reading saved by ``trajloom choose-continuity
    --keep-visibility``: hold-last, see :func:`assemble`), with both readings' validation scores."""
    record = json.loads((d / "continuity" / "continuity.json").read_text())
    sc, mode = record["visibility_scores"], record["saved_visibility_mode"]
    scores = "; ".join(f"{k.replace('_', '-')} accuracy {v['accuracy']:.4f}, occlusion F1 {v['occlusion_f1']:.4f}"
                       for k, v in sc.items())
    if "head" in sc:
        return (f"each point's last history visibility held (`visibility_mode=\"{mode}\"`), because the visibility head "
                "in `visibility_predictor/` did not beat it on the test split of the README's three-seed quickstart run "
                f"(README, \"Visibility\"); `pipe(..., visibility_mode=\"head\")` uses the head (validation split of "
                f"this run: {scores}).")
    return f"each point's last history visibility held (`visibility_mode=\"{mode}\"`; no head; validation split: {scores})."


def write_ablations_md(out: Path, bench: Path, vae_owners: dict) -> Path:
    """``out/ablations/ablations.{md,json}``: the ablation rows of ``ablations/results/results.json`` (test split)
    plus the test-split VAE VEPE (33-frame future windows, Table 4) of each VAE in ``vae_owners`` (row name -> folder
    holding ``vae/``) that no evaluated pipeline carries (the regulariser ablation trains only a VAE)."""
    quiet_diffusers()
    from trajloom_hf import AutoencoderTraj
    from trajloom_hf.evaluation import load_bench_split, results_markdown, vae_reconstruction_vepes

    ab = out / "ablations"
    evaluated = json.loads((ab / "results" / "results.json").read_text())
    results, settings = evaluated["results"], evaluated["settings"]
    data = load_bench_split(str(bench), CONFIG, "test")
    t_h, t_f = settings["history_frames"], settings["future_frames"]
    gt, gt_vis = data.tracks[:, t_h:t_h + t_f], data.visibility[:, t_h:t_h + t_f]
    for name, folder in vae_owners.items():
        if "vae_vepe" not in results.get(name, {}):
            results.setdefault(name, {}).update(
                vae_reconstruction_vepes(AutoencoderTraj.from_pretrained(folder / "vae"), gt, gt_vis))
    text = ("# Ablations (Tables 3-5, App. D), test split\n\n"
            "TrajLoom (video) with one component removed, each trained with the same budget as TrajLoom "
            "(`python examples/quickstart.py --ablations ...`). w/o offsets: absolute coordinates in the VAE and the "
            "flow (no visibility head: its visibility is hold-last); w/o regulariser: the VAE with lambda_temporal = "
            "lambda_spatial = 0 (its VEPE only); w/o anchoring: pure-noise source z_0; w/o fusion: no token-aligned "
            "history fusion; w/o on-policy: the flow before the on-policy stage. Every row without boundary "
            "continuity (`--boundary-continuity 0`: the paper's method, not the quickstart's chosen join).\n\n"
            + results_markdown(results, CONFIG) + "\n")
    from trajloom_hf.video_io import atomic_path

    with atomic_path(ab / "ablations.md") as tmp:
        Path(tmp).write_text(text)
    write_json(ab / "ablations.json", {"settings": settings, "results": results})
    return ab / "ablations.md"


def write_spread(target: Path, header: str, per_seed: dict, keep: Optional[Sequence[str]] = None) -> Path:
    """``target`` (.md) and its .json: mean ± std over seeds of ``per_seed`` (``{seed: results}``, the rows in
    ``keep`` only when given) and the differences against TrajLoom (:mod:`trajloom_hf.seed_spread`)."""
    from trajloom_hf.seed_spread import aggregate, differences, spread_markdown
    from trajloom_hf.video_io import atomic_path

    spread = {m: row for m, row in aggregate(per_seed).items() if keep is None or m in keep}
    seeds = sorted(per_seed)
    with atomic_path(target) as tmp:
        Path(tmp).write_text(header + spread_markdown(spread, seeds, reference="TrajLoom"))
    write_json(target.with_suffix(".json"), {
        "seeds": seeds,
        "spread": {m: {k: {"mean": v.mean, "std": v.std, "values": list(v.values)} for k, v in row.items()}
                   for m, row in spread.items()},
        "differences": [vars(d) for d in differences(spread, "TrajLoom")],
    })
    return target


def write_ablation_spread(root: Path, preset: str, seeds: List[int]) -> Path:
    """``root/preset/ablation_spread.{md,json}``: mean ± std of the ablation rows over ``seeds`` against TrajLoom."""
    per_seed = {s: json.loads((run_dir(root, preset, s) / "ablations" / "ablations.json").read_text())["results"]
                for s in seeds}
    return write_spread(run_dir(root, preset, 0) / "ablation_spread.md",
                        f"# trajloom-hf quickstart ({preset} preset): ablations over training seeds\n\n"
                        f"Test split; seed S trains with `--seed {TRAINING_SEED} + S` and samples with S.\n\n",
                        per_seed, keep=["TrajLoom", *ABLATIONS.values()])


def write_seed_spread(root: Path, preset: str, seeds: List[int]) -> Path:
    """``root/preset/seed_spread.{md,json}``: mean ± std over ``seeds`` and the differences against TrajLoom."""
    per_seed = {s: json.loads((run_dir(root, preset, s) / "results" / "results.json").read_text())["results"]
                for s in seeds}
    return write_spread(run_dir(root, preset, 0) / "seed_spread.md",
                        f"# trajloom-hf quickstart ({preset} preset): spread over training seeds\n\n"
                        f"The same benchmark for every seed; seed S trains with `--seed {TRAINING_SEED} + S` and samples "
                        f"with S (`python examples/quickstart.py --preset {preset} --seeds {' '.join(map(str, seeds))}`)."
                        "\n\n", per_seed)


def main(argv=None):
    global CONFIG
    args = parse_args(argv)
    CONFIG = args.bench
    p = PRESETS[args.preset]
    root = Path(args.out)
    # this process's own torch work (saving pipelines, GIFs) on the same fixed thread count as its stages
    os.environ.update(thread_env(args.threads))
    seeds = args.run_seeds
    bench = run_dir(root, args.preset, 0) / "trajloombench"
    t_start = time.time()
    phases = []
    for i, seed in enumerate(seeds):
        phases += seed_phases(root, args.preset, seed, p, bench, with_bench=i == 0,
                              ablations=args.ablation_variants if seed in (args.ablations or ()) else ())
    if args.seeds is not None:
        phases.append(Phase([[Stage("seed spread (mean ± std)", None, "spread",
                                    fn=lambda: write_seed_spread(root, args.preset, seeds))]]))
    if args.ablations is not None and len(set(args.ablations)) > 1:
        ablated = sorted(set(args.ablations))
        phases.append(Phase([[Stage("ablation spread (mean ± std)", None, "spread",
                                    fn=lambda: write_ablation_spread(root, args.preset, ablated))]]))
    StageRunner(args.threads, p["eta"]).execute(phases)
    for seed in seeds:
        out = run_dir(root, args.preset, seed)
        print(f"\nseed {seed}: results {(out / 'results.md').resolve()}\n        GIFs    {(out / 'gifs').resolve()}\n"
              f"        cards   {(out / 'model_cards').resolve()}")
    if args.seeds is not None:
        print(f"spread over seeds {seeds}: {(run_dir(root, args.preset, 0) / 'seed_spread.md').resolve()}")
    print(f"this invocation: {(time.time() - t_start) / 60:.1f} min")


def write_cards(out: Path, preset: str, p, log: Path, seed: int = 0) -> Path:
    """One card per trained artefact, in its folder (``README.md``) and collected under ``out/model_cards``."""
    quiet_diffusers()
    from trajloom_hf import TrajLoomPipeline
    from trajloom_hf.model_card import TrainingRecord, model_card, write_model_card

    record = TrainingRecord(
        preset=preset, reproduce=f"python examples/quickstart.py --preset {preset}" + ("" if CONFIG == DEFAULT_BENCH else f" --bench {CONFIG}")
        + (f" --seed {seed}" if seed else "") + ("   # = make quickstart" if preset == "cpu" and CONFIG == DEFAULT_BENCH and not seed else ""),
        dataset="trajloombench", dataset_config=CONFIG,
        data_description=(f"{BENCHES[CONFIG][0]} ({p['train']} training clips, {p['height']}x{p['width']} px, stride "
                          f"{p['stride']}, {p['frames']} history + {p['frames']} future frames)"),
        stages=json.loads(log.read_text()) if log.exists() else {})
    results_json = out / "results" / "results.json"
    pipes = {name: TrajLoomPipeline.from_pretrained(out / name / "pipeline") for name in METHODS}
    pipe = pipes["trajloom"]
    n = lambda m: sum(t.numel() for t in m.parameters())  # noqa: E731
    n_flow = lambda q: n(q.transformer) + (n(q.frame_encoder) if q.frame_encoder is not None else 0)  # noqa: E731
    vae_stage = "2/7 TrajLoom: AutoencoderTraj"
    # the folders as typed from the repository root with the default --out (like the stage commands)
    shown = lambda folder: str(folder).replace(str(out.parent), "quickstart_out")  # noqa: E731
    frames_note = ("Its `FrameEncoder` (`frame_encoder/`, {params:,} parameters, trained jointly with the transformer) "
                   "turns {what} into features on the track grid, the transformer's video input: call the pipeline "
                   "with `video=` (the history frames `[T_h, H, W, 3]` uint8). ")
    join_note = lambda d: (  # noqa: E731
        f" Its config sets `boundary_continuity={chosen_tau(d)}` (frames): each decoded window is joined onto the history "
        "in pixel space (not in the paper; README \"Boundary continuity\"), the tau with the lowest minADE@K on the "
        "validation split (`trajloom choose-continuity`); `pipe(..., boundary_continuity=0)` turns it off. "
        f"Its future visibility: {visibility_note(d)}")
    cards = {
        "autoencoder_traj": (out / "trajloom" / "vae", model_card(
            "autoencoder", model_name=f"trajloom-vae-{preset}", config=dict(pipe.vae.config),
            num_parameters=n(pipe.vae), results_json=results_json, record=record, method="TrajLoom",
            stage_names=[vae_stage], load_path=shown(out / "trajloom" / "vae"))),
        "trajloom_pipeline": (out / "trajloom" / "pipeline", model_card(
            "pipeline", model_name=f"trajloom-{preset}", config=dict(pipe.transformer.config),
            num_parameters=n_flow(pipe), results_json=results_json, record=record, method="TrajLoom",
            stage_names=[vae_stage, "3/7 TrajLoom (video): TrajFlowTransformer", "3/7 TrajLoom (video): on-policy K-step stage",
                         "3/7 TrajLoom: visibility head"],
            load_path=shown(out / "trajloom" / "pipeline"),
            notes=frames_note.format(params=n(pipe.frame_encoder), what="one history frame per latent step").rstrip()
            + join_note(out / "trajloom"))),
        "trajloom_novideo_pipeline": (out / "trajloom_novideo" / "pipeline", model_card(
            "pipeline", model_name=f"trajloom-novideo-{preset}", config=dict(pipes["trajloom_novideo"].transformer.config),
            num_parameters=n_flow(pipes["trajloom_novideo"]), results_json=results_json, record=record,
            method=METHODS["trajloom_novideo"],
            stage_names=[vae_stage, "3/7 TrajLoom (no video): TrajFlowTransformer",
                         "3/7 TrajLoom (no video): on-policy K-step stage", "3/7 TrajLoom: visibility head"],
            load_path=shown(out / "trajloom_novideo" / "pipeline"),
            notes="TrajLoom **without video conditioning**: the same VAE, visibility head and flow budget as "
                  "`trajloom-" + preset + "`, conditioned on the track history only (the ablation of the video input)."
                  + join_note(out / "trajloom_novideo"))),
        "visibility_predictor": (out / "trajloom" / "vis" / "visibility_predictor", model_card(
            "visibility", model_name=f"trajloom-visibility-{preset}", config=dict(pipe.visibility_predictor.config),
            num_parameters=n(pipe.visibility_predictor), results_json=results_json, record=record, method="TrajLoom",
            stage_names=["3/7 TrajLoom: visibility head"],
            load_path=shown(out / "trajloom" / "vis" / "visibility_predictor"))),
        "whn_style_baseline": (out / "whn" / "pipeline", model_card(
            "pipeline", model_name=f"whn-style-baseline-{preset}", config=dict(pipes["whn"].transformer.config),
            num_parameters=n_flow(pipes["whn"]), results_json=results_json, record=record, method="WHN-style",
            stage_names=["2/7 WHN-style baseline: AutoencoderTraj", "3/7 WHN-style baseline: TrajFlowTransformer"],
            load_path=shown(out / "whn" / "pipeline"),
            notes="This is the **baseline**, trained with the same VAE and flow budget as TrajLoom: appearance only, as "
                  "WHN (reference `whn-baseline.md`). Its input is the frame at the forecast start (the last history "
                  "frame) and the points' positions and visibility there (`history_mode=\"last_frame\"`: that one "
                  "position held over the history window, so no velocity; no earlier frame); absolute coordinates "
                  "(`--no_offsets`), no boundary anchoring, no on-policy stage, no visibility head. "
                  + frames_note.format(params=n(pipes["whn"].frame_encoder), what="that frame").rstrip()
                  + join_note(out / "whn"))),
    }
    for name, (folder, text) in cards.items():
        write_model_card(folder / "README.md", text)
        write_model_card(out / "model_cards" / f"{name}.md", text)
    return out / "model_cards"


def assemble(vae_dir: Path, flow_dir: Path, out_dir: Path, history_mode: str, vis_dir: Optional[Path]):
    """Save a TrajLoomPipeline from trained parts: the VAE, a flow stage's transformer/scheduler (and its frame
    encoder when it trained one) and an optional visibility head."""
    from trajloom_hf import AutoencoderTraj, FlowMatchTrajScheduler, FrameEncoder, TrajFlowTransformer, TrajLoomPipeline, VisibilityPredictor

    pipe = TrajLoomPipeline(
        # hold-last is the reading these pipelines ship with: the head did not beat it on the test split (README
        # "Visibility"); the head stays in the folder, `pipe(..., visibility_mode="head")`
        visibility_mode="hold_last",
        vae=AutoencoderTraj.from_pretrained(vae_dir / "vae"),
        transformer=TrajFlowTransformer.from_pretrained(flow_dir / "transformer"),
        scheduler=FlowMatchTrajScheduler.from_pretrained(flow_dir / "scheduler"),
        visibility_predictor=VisibilityPredictor.from_pretrained(vis_dir / "visibility_predictor") if vis_dir else None,
        frame_encoder=FrameEncoder.from_pretrained(flow_dir / "frame_encoder") if (flow_dir / "frame_encoder").is_dir() else None,
        history_mode=history_mode,
    )
    pipe.save_pretrained(out_dir)


def render_examples(out: Path, bench: Path, p) -> list:
    import numpy as np
    import torch

    from trajloom_hf import TrajLoomPipeline
    from trajloom_hf.data.trajloombench import load_trajloombench
    from trajloom_hf.evaluation import uses_frames
    from trajloom_hf.rendering import forecast_keyframes, montage, render_forecast
    from trajloom_hf.video_io import decode_mp4_bytes, save_png, write_gif

    ds = load_trajloombench(str(bench), CONFIG, "test")
    pipes = {name: TrajLoomPipeline.from_pretrained(out / name / "pipeline") for name in METHODS}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    t = p["frames"]
    paths = []
    for i in range(min(p["gifs"], len(ds))):
        row = ds[i]
        frames = decode_mp4_bytes(bytes(row["video"]))
        tracks, vis = row["tracks"], row["visibility"]
        futures, fvis = [tracks[t : 2 * t]], [vis[t : 2 * t]]
        for pipe in pipes.values():
            res = pipe(tracks[:t], vis[:t], video=frames[:t] if uses_frames(pipe) else None,
                       num_inference_steps=p["sample_steps"], generator=[torch.Generator().manual_seed(i)])
            futures.append(res.future_tracks[0, 0])
            fvis.append(res.future_visibility[0, 0])
        video = render_forecast(frames[:t], tracks[:t], vis[:t], np.stack(futures), np.stack(fvis),
                                labels=["ground truth", *METHODS.values()])
        path = out / "gifs" / f"test_{i:02d}.gif"
        write_gif(path, video, 8)
        # the still: now, half-way and the end of the future, one row each (panels stay readable in the README)
        save_png(path.with_suffix(".png"), montage(video, indices=forecast_keyframes(t, len(futures[0]))))
        paths.append(path)
    return paths


if __name__ == "__main__":
    main()
