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
resumes (the training scripts themselves also resume from their latest checkpoint). A rerun on the same machine
reproduces every number bit for bit: all stages are seeded from ``--seed`` and each runs on a thread count fixed by
the plan (``--threads``), never by what else happens to be running. ``stages.json`` records each stage's command,
wall and CPU time and thread count; one progress bar estimates the time left from the stages' measured step rates.

    python examples/quickstart.py --preset cpu                # the full run (see PRESETS for its budget)
    python examples/quickstart.py --preset smoke              # a few minutes; what CI runs
    python examples/quickstart.py --preset cpu --seeds 0 1 2  # three seeds, then seed_spread.md (mean ± std)
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
from typing import Callable, List, Optional

from tqdm.auto import tqdm

from trajloom_hf.progress_estimate import StageClock, format_duration, remaining_seconds

HERE = Path(__file__).resolve().parent

CONFIG = "synthetic_tracked"  # the bench config: synthetic scenes, tracks from the embedded tracker
TRAINING_PHASE = "2-3/7 VAE + flow of both models, concurrently (wall time)"
TRAINING_SEED = 42  # the training scripts' default seed; --seed S trains with TRAINING_SEED + S, samples with S

# eta: idle-machine priors of the progress bar's estimate, per kind of stage: (seconds per step, start-up seconds);
# measured on this 2-core machine (cpu: the README run's stages.json). Once a stage has run a few steps its own
# rate replaces the prior, and the measured/prior ratio scales the stages still to come (progress_estimate).
PRESETS = {
    "smoke": dict(
        height=80, width=96, stride=16, frames=9, train=8, validation=2, test=4,
        vae=dict(hidden_size=32, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=4, pos_embed_dim=8),
        vae_steps=30, flow=dict(hidden_size=32, num_heads=4, num_layers=2), flow_steps=30, on_policy_steps=6,
        vis_steps=20, batch=4, samples=2, sample_steps=4, gifs=2,
        eta=dict(bench=(0, 5), vae=(0.25, 8), flow=(0.15, 6), on_policy=(3.0, 10), vis=(0.5, 8), save=(0, 2),
                 evaluate=(0, 10), render=(0, 4), cards=(0, 3), spread=(0, 1)),
    ),
    "cpu": dict(
        height=96, width=160, stride=16, frames=33, train=160, validation=8, test=32,
        vae=dict(hidden_size=64, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=8, pos_embed_dim=16),
        vae_steps=600, flow=dict(hidden_size=96, num_heads=4, num_layers=4), flow_steps=800, on_policy_steps=100,
        vis_steps=200, batch=8, samples=4, sample_steps=10, gifs=3,
        eta=dict(bench=(0, 102), vae=(0.98, 15), flow=(0.58, 20), on_policy=(3.1, 10), vis=(0.25, 10), save=(0, 3),
                 evaluate=(0, 48), render=(0, 15), cards=(0, 5), spread=(0, 1)),
    ),
}


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", default="quickstart_out")
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
    return args


def run_dir(out: Path, preset: str, seed: int) -> Path:
    """The folder of one seed's run: ``out/preset`` for seed 0 (the default run), ``out/preset-seedS`` otherwise."""
    return out / (preset if seed == 0 else f"{preset}-seed{seed}")


def thread_env(threads: int) -> dict:
    """Environment that fixes every thread pool torch may use on a CPU (OpenMP, MKL, OpenBLAS) to ``threads``.

    fp32 reductions and matrix products split their work by thread count, so a stage's result depends on it: it
    must never depend on what else happens to be running (measured: the smoke VAE trained on 1 and on 2 threads
    gives different weights; on a fixed count, identical weights whether alone or next to another run)."""
    n = str(int(threads))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_DYNAMIC": "FALSE"}


@dataclass
class Stage:
    """One stage: a subprocess ``cmd`` or an in-process ``fn``, skipped when ``done`` exists (``None``: always run).

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
        ran = {st.title for chain in phase.chains for st in chain} & set(self.ran)
        if phase.title and ran:  # the wall time of the invocation that trained
            record(phase.log, phase.title, {"command": "the stages of " + " and ".join(
                f"chain {i + 1} ({', '.join(st.title for st in chain)})" for i, chain in enumerate(phase.chains)),
                "seconds": time.time() - t0, "concurrent": False, "one_core": False, "threads": self.threads})

    def _run_chain(self, chain: List[Stage], threads: int, concurrent: bool) -> None:
        for st in chain:
            self.run(st, threads, concurrent)

    def run(self, st: Stage, threads: int, concurrent: bool = False) -> None:
        """Run one stage on ``threads`` threads unless its ``done`` marker exists."""
        if st.done is not None and st.done.exists():
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


def seed_phases(root: Path, preset: str, seed: int, p: dict, bench: Path, with_bench: bool) -> List[Phase]:
    """The stages of one seed's run in ``run_dir(root, preset, seed)`` (the bench stage only with ``with_bench``)."""
    out = run_dir(root, preset, seed)
    log = out / "stages.json"
    py = sys.executable
    trajloom = [py, "-m", "trajloom_hf.cli"]
    train_seed = ["--seed", TRAINING_SEED + seed]
    S = lambda *a, **k: Stage(*a, log=log, **k)  # noqa: E731
    phases = []

    # 1. data (shared by every seed)
    if with_bench:
        phases.append(Phase([[Stage("1/7 synthetic TrajLoomBench", bench / "README.md", "bench", trajloom + [
            "bench", "build", "--source", "synthetic", "--tracker", "optical_flow", "--out", bench, "--config", CONFIG,
            "--num-train", p["train"], "--num-validation", p["validation"], "--num-test", p["test"],
            "--height", p["height"], "--width", p["width"], "--stride", p["stride"],
            "--history-frames", p["frames"], "--future-frames", p["frames"], "--shard-size", 32],
            log=run_dir(root, preset, 0) / "stages.json")]]))
    common = ["--bench", bench, "--bench_config", CONFIG, "--train_batch_size", p["batch"], "--report_to", "csv", *train_seed,
              "--deterministic"]
    geometry = ["--height", p["height"], "--width", p["width"], "--stride", p["stride"], "--num_frames", p["frames"]]
    flow_cfg = write_json(out / "configs" / "transformer.json", p["flow"])
    vae_cfg = write_json(out / "configs" / "vae.json", p["vae"])

    def train(name: str) -> List[Stage]:
        """One model's VAE and flow (the WHN-style baseline is then complete and saved as a pipeline)."""
        vae_extra, flow_extra = {
            "trajloom": ([], []),
            "whn": (["--no_offsets"], ["--history_mode", "first_frame", "--no_anchor", "--no_history_visibility"]),
        }[name]
        label = "TrajLoom" if name == "trajloom" else "WHN-style baseline"
        d = out / name
        chain = [
            S(f"2/7 {label}: AutoencoderTraj", d / "vae" / "config.json", "vae", [
                py, HERE / "train_autoencoder_traj.py", "--output_dir", d / "vae", "--model_config", vae_cfg, *geometry,
                *common, "--learning_rate", 2e-3, "--lr_warmup_steps", 10, "--max_train_steps", p["vae_steps"],
                "--validation_steps", p["vae_steps"], "--checkpointing_steps", max(10, p["vae_steps"] // 4),
                "--resume_from_checkpoint", "latest", *vae_extra], steps=p["vae_steps"], folder=d / "vae"),
            S(f"3/7 {label}: TrajFlowTransformer", d / "flow" / "transformer" / "config.json", "flow", [
                py, HERE / "train_trajloom_flow.py", "--vae_path", d / "vae", "--output_dir", d / "flow",
                "--transformer_config", flow_cfg, *common, "--learning_rate", 1e-3, "--max_train_steps", p["flow_steps"],
                "--validation_steps", 0, "--checkpointing_steps", max(10, p["flow_steps"] // 4),
                "--latent_cache_dir", d / "latents", "--resume_from_checkpoint", "latest", *flow_extra],
                steps=p["flow_steps"], folder=d / "flow"),
        ]
        if name == "whn":
            chain.append(S("4/7 WHN-style baseline: save the TrajLoomPipeline", d / "pipeline" / "model_index.json",
                           "save", fn=lambda: assemble(d, d / "flow", history_mode="first_frame", with_vis=False)))
        return chain

    # 2.-3. the two models' VAE and flow train concurrently, threads // 2 each: at these sizes two single-threaded
    # processes get 1.2-1.4x the throughput of one process on two threads (measured: 40 VAE steps 31 s alone on 2
    # threads, 47 s each for two at once). Their work is the same size, so both finish together.
    phases.append(Phase([train("trajloom"), train("whn")], title=TRAINING_PHASE, log=log))

    # 3. TrajLoom only, on all threads: the on-policy K-step stage and the visibility head; 4. the saved pipeline
    d = out / "trajloom"
    phases.append(Phase([[
        S("3/7 TrajLoom: on-policy K-step stage", d / "flow_on_policy" / "transformer" / "config.json", "on_policy", [
            py, HERE / "train_trajloom_flow.py", "--vae_path", d / "vae", "--output_dir", d / "flow_on_policy",
            "--init_transformer", d / "flow" / "transformer", *common, "--on_policy", "--learning_rate", 2e-4,
            "--on_policy_batch_size", p["batch"], "--max_train_steps", p["on_policy_steps"], "--validation_steps", 0,
            "--checkpointing_steps", max(5, p["on_policy_steps"] // 2), "--latent_cache_dir", d / "latents",
            "--resume_from_checkpoint", "latest"], steps=p["on_policy_steps"], folder=d / "flow_on_policy"),
        S("3/7 TrajLoom: visibility head", d / "vis" / "visibility_predictor" / "config.json", "vis", [
            py, HERE / "train_visibility_predictor.py", "--vae_path", d / "vae", "--output_dir", d / "vis", *common,
            "--learning_rate", 2e-3, "--max_train_steps", p["vis_steps"], "--lr_warmup_steps", 5, "--validation_steps", 0,
            "--checkpointing_steps", max(5, p["vis_steps"] // 2), "--resume_from_checkpoint", "latest"],
            steps=p["vis_steps"], folder=d / "vis"),
        S("4/7 TrajLoom: save the TrajLoomPipeline", d / "pipeline" / "model_index.json", "save",
          fn=lambda: assemble(d, d / "flow_on_policy", history_mode="tracks", with_vis=True)),
    ]]))

    # 6. evaluation; 7. pictures and results.md; 8. model cards, from the measured results
    results = out / "results"
    phases.append(Phase([[
        S("6/7 trajloom evaluate (test split)", results / "results.json", "evaluate", trajloom + [
            "evaluate", "--pipeline", out / "trajloom" / "pipeline", "--baseline", f"WHN-style={out / 'whn' / 'pipeline'}",
            "--bench", bench, "--config", CONFIG, "--split", "test", "--num-samples", p["samples"],
            "--steps", p["sample_steps"], "--seed", seed, "--out", results]),
        S("7/7 GIFs and results.md", None, "render", fn=lambda: write_results_md(out, bench, preset, seed, p, log)),
        S("8/8 model cards", None, "cards", fn=lambda: write_cards(out, preset, p, log, seed)),
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
          f"Synthetic TrajLoomBench (tracks from the embedded optical-flow tracker, as the paper's AllTracker protocol) "
          f"at {p['height']}x{p['width']} (stride {p['stride']}), {p['frames']} history + {p['frames']} future frames; "
          f"{p['train']} training and {p['test']} test clips. Training and evaluation took {total_minutes(log):.1f} min "
          f"wall time on this machine and {cpu_minutes(log):.1f} min of CPU time (user + sys, all stages"
          f"{f', {cores} threads' if cores else ''}; per stage: `stages.json`).", "",
          table.split("\n", 2)[-1], "", "## Forecasts (history, then GT | TrajLoom | WHN-style futures)", ""]
    md += [f"![{g.stem}]({g.relative_to(out)})" for g in gifs]
    (out / "results.md").write_text("\n".join(md) + "\n")


def write_seed_spread(root: Path, preset: str, seeds: List[int]) -> Path:
    """``root/preset/seed_spread.{md,json}``: mean ± std over ``seeds`` and the differences against TrajLoom."""
    from trajloom_hf.seed_spread import aggregate, differences, spread_markdown

    per_seed = {s: json.loads((run_dir(root, preset, s) / "results" / "results.json").read_text())["results"]
                for s in seeds}
    spread = aggregate(per_seed)
    target = run_dir(root, preset, 0) / "seed_spread.md"
    text = (f"# trajloom-hf quickstart ({preset} preset): spread over training seeds\n\n"
            f"The same benchmark for every seed; seed S trains with `--seed {TRAINING_SEED} + S` and samples with S "
            f"(`python examples/quickstart.py --preset {preset} --seeds {' '.join(map(str, seeds))}`).\n\n"
            + spread_markdown(spread, seeds, reference="TrajLoom"))
    from trajloom_hf.video_io import atomic_path

    with atomic_path(target) as tmp:
        Path(tmp).write_text(text)
    write_json(target.with_suffix(".json"), {
        "seeds": list(seeds),
        "spread": {m: {k: {"mean": v.mean, "std": v.std, "values": list(v.values)} for k, v in row.items()}
                   for m, row in spread.items()},
        "differences": [vars(d) for d in differences(spread, "TrajLoom")],
    })
    return target


def main(argv=None):
    args = parse_args(argv)
    p = PRESETS[args.preset]
    root = Path(args.out)
    # this process's own torch work (saving pipelines, GIFs) on the same fixed thread count as its stages
    os.environ.update(thread_env(args.threads))
    seeds = args.seeds if args.seeds is not None else [args.seed]
    bench = run_dir(root, args.preset, 0) / "trajloombench"
    t_start = time.time()
    phases = []
    for i, seed in enumerate(seeds):
        phases += seed_phases(root, args.preset, seed, p, bench, with_bench=i == 0)
    if args.seeds is not None:
        phases.append(Phase([[Stage("seed spread (mean ± std)", None, "spread",
                                    fn=lambda: write_seed_spread(root, args.preset, seeds))]]))
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
    from trajloom_hf import AutoencoderTraj, TrajLoomPipeline
    from trajloom_hf.model_card import TrainingRecord, model_card, write_model_card

    record = TrainingRecord(
        preset=preset, reproduce=f"python examples/quickstart.py --preset {preset}" + (f" --seed {seed}" if seed else "")
        + ("   # = make quickstart" if preset == "cpu" and not seed else ""),
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
