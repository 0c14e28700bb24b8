"""Hugging Face model cards (YAML metadata + markdown) for trained TrajLoom artefacts.

A card is written next to the weights (``README.md`` in the ``save_pretrained`` folder, what the Hub shows) from what
was actually measured: the ``results.json`` written by :func:`trajloom_hf.evaluation.evaluate_bench` and a record of
how the artefact was trained (:class:`TrainingRecord`). Metrics go into the ``model-index`` metadata so that the Hub
renders them as an evaluation table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

from .evaluation import TABLE_ROWS
from .json_files import read_json_object

PathLike = Union[str, Path]

KINDS = ("autoencoder", "pipeline", "visibility")

CITATION = """```bibtex
@article{trajloom2026,
  title   = {TrajLoom: Dense Future Trajectory Generation from Video},
  journal = {arXiv preprint arXiv:2603.22606},
  year    = {2026}
}
```"""

# metric key -> (model-index type, display name); values are stored unscaled (FVMD-Long is not divided by 10^3)
_METRICS = {
    "fvmd": ("fvmd", "FVMD (trajectory mode, 16-frame clips)"),
    "fvmd_long": ("fvmd_long", "FVMD-Long"),
    "flow_tv": ("flow_tv", "FlowTV"),
    "div_curl_energy": ("div_curl_energy", "DivCurlE"),
    "min_ade": ("min_ade", "minADE@K (px)"),
    "vae_vepe": ("vepe", "VAE reconstruction VEPE (px)"),
    "vis_accuracy": ("accuracy", "future visibility accuracy"),
    "occlusion_f1": ("f1", "future occlusion F1"),
}

_CONVERT = """## Using the official released weights

The authors' checkpoints (Hub repository `zeweizhang/TrajLoom`: `trajloom_vae.pt`, `trajloom_generator.pt`,
`visibility_predictor.pt`, with `vae_latent_stats.json` from the official code's `configs/`) convert to a pipeline
folder in this format. The files are read with `torch.load(weights_only=True)`; pass `--trust-pickle` only for files
you trust.

```bash
trajloom convert-official --out trajloom-official --pipeline \\
    --vae trajloom_vae.pt --latent-stats vae_latent_stats.json \\
    --generator trajloom_generator.pt --visibility-predictor visibility_predictor.pt
```

```python
from trajloom_hf import TrajLoomPipeline
pipe = TrajLoomPipeline.from_pretrained("trajloom-official")       # 480x832, stride 32, 81 + 81 frames
```

The converted VAE matches the official dense formulation to < 1e-5 (normalised units; `tests/test_convert_autoencoder.py`).
The official generator was trained with Wan2.1 VAE video features and UMT5-XXL captions; load them with
`diffusers.AutoencoderKLWan` / `transformers.UMT5EncoderModel` and pass them to the pipeline for faithful results."""


@dataclass
class TrainingRecord:
    """How an artefact was trained: the reproduce command, the data, the budget and the wall time.

    ``stages`` maps a stage name to ``{"command": str, "seconds": float, "one_core": bool}`` and optionally
    ``"cpu_seconds"`` (user + sys) (as recorded by the quickstart; ``one_core``: the stage shared the machine with
    another training run).
    """

    preset: str
    reproduce: str
    dataset: str
    dataset_config: str
    data_description: str
    stages: Dict[str, dict] = field(default_factory=dict)
    machine: str = "2 CPU cores"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _eval_results(results: Dict[str, Dict[str, float]], method: str, keys: List[str], record: TrainingRecord, split: str):
    from huggingface_hub import EvalResult

    scores = results[method]
    out = []
    for key in keys:
        if key in scores and scores[key] is not None:
            mtype, mname = _METRICS[key]
            out.append(EvalResult(task_type="trajectory-forecasting", task_name="Dense future point-trajectory generation",
                                  dataset_type=record.dataset, dataset_name=f"TrajLoomBench ({record.dataset_config})",
                                  dataset_config=record.dataset_config, dataset_split=split, metric_type=mtype,
                                  metric_name=mname, metric_value=float(scores[key])))
    return out


def _table(results: Dict[str, Dict[str, float]], keys: List[str], highlight: str) -> str:
    """Markdown table, one row per method, one column per metric (paper scaling from the Table 1 layout)."""
    cols = [k for k in keys if any(k in s and s[k] is not None for s in results.values())]
    head = "| method | " + " | ".join(TABLE_ROWS[k][0] for k in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for method, scores in results.items():
        cells = [_fmt(scores[k] * TABLE_ROWS[k][1]) if scores.get(k) is not None else "–" for k in cols]
        name = f"**{method}** (this model)" if method == highlight else method
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _stages(record: TrainingRecord, names: List[str]) -> str:
    lines = []
    for name in names:
        st = record.stages.get(name)
        if st:
            where = (f"one core of {record.machine}, next to the other model's training" if st.get("one_core")
                     else record.machine)
            cpu = f" wall, {st['cpu_seconds'] / 60:.1f} min CPU," if st.get("cpu_seconds") is not None else ""
            lines += [f"- {name} ({st['seconds'] / 60:.1f} min{cpu} on {where}):", "", "  ```bash",
                      f"  {st['command']}", "  ```"]
    return "\n".join(lines)


def model_card(kind: str, *, model_name: str, config: dict, num_parameters: int, results_json: PathLike,
               record: TrainingRecord, method: str, stage_names: List[str], notes: Optional[str] = None,
               load_path: Optional[str] = None) -> str:
    """The card text (``---`` YAML front matter + markdown) for one trained artefact.

    ``kind``: ``"autoencoder"`` (``AutoencoderTraj``), ``"pipeline"`` (``TrajLoomPipeline`` with its
    ``TrajFlowTransformer``) or ``"visibility"`` (``VisibilityPredictor``). ``method`` is the row of
    ``results_json`` that holds this artefact's scores. ``load_path`` is what the usage snippet passes to
    ``from_pretrained`` (a Hub id or a local folder; default ``model_name``).
    """
    from huggingface_hub import ModelCardData

    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
    data = read_json_object(results_json, "`results_json`", "trajloom evaluate results")
    results, settings = data["results"], data["settings"]
    if method not in results:
        raise ValueError(f"`method` {method!r} is not in {results_json} (methods: {sorted(results)})")
    split = settings["split"]
    keys = {"autoencoder": ["vae_vepe"],
            "pipeline": ["fvmd", "fvmd_long", "flow_tv", "div_curl_energy", "min_ade", "vis_accuracy", "occlusion_f1"],
            "visibility": ["vis_accuracy", "occlusion_f1"]}[kind]
    load_path = load_path or model_name
    title = {"autoencoder": "AutoencoderTraj (TrajLoom-VAE)", "pipeline": "TrajLoomPipeline (TrajLoom-Flow)",
             "visibility": "VisibilityPredictor (TrajLoom visibility head)"}[kind]
    meta = ModelCardData(
        library_name="trajloom-hf", license="apache-2.0", datasets=[record.dataset], pipeline_tag="other",
        tags=["trajloom", "point-tracking", "trajectory-forecasting", "flow-matching", "diffusers", record.preset],
        model_name=model_name, eval_results=_eval_results(results, method, keys, record, split) or None,
    )
    what = {
        "autoencoder": "a trajectory VAE (§3.2): Grid-Anchor offsets of a dense track window "
                       f"`[B, {config.get('num_frames')}, H_g, W_g, 2]` (normalised [-1, 1]) are encoded to latents "
                       f"with {config.get('latent_channels')} channels on a 4x shorter time axis and decoded back.",
        "pipeline": "a rectified-flow generator in the VAE latent space (§3.3) with boundary anchoring and history "
                    "fusion, saved as a whole `TrajLoomPipeline` (VAE, transformer, scheduler, visibility head): given "
                    "history tracks `[T, N, 2]` px and visibility `[T, N]` it samples future tracks and visibility.",
        "visibility": "the visibility head (§3.3): predicts future per-point visibility logits from the future "
                      "latents and the history, used by `TrajLoomPipeline` to return `future_visibility`.",
    }[kind]
    usage = {
        "autoencoder": ("from trajloom_hf import AutoencoderTraj\n"
                        "from trajloom_hf.encoding import normalize_tracks\n"
                        f"vae = AutoencoderTraj.from_pretrained(\"{load_path}\")\n"
                        "x = normalize_tracks(tracks, vae.config.height, vae.config.width)   # [B, T, N, 2] px -> [-1, 1]\n"
                        "z = vae.encode(x).latent_dist.mode()\n"
                        "recon = vae.decode(z).sample                                          # normalised"),
        "pipeline": ("import torch\nfrom trajloom_hf import TrajLoomPipeline\n"
                     f"pipe = TrajLoomPipeline.from_pretrained(\"{load_path}\")\n"
                     "out = pipe(history_tracks, history_visibility, num_samples=4,      # [T_h, N, 2] px, [T_h, N]\n"
                     + ("           video=history_frames,                               # [T_h, H, W, 3] uint8\n"
                        if config.get("use_video_cond") else "")
                     + "           generator=torch.Generator().manual_seed(0))\n"
                     "out.future_tracks, out.future_visibility                          # [1, 4, T_f, N, 2] px, [1, 4, T_f, N]"),
        "visibility": ("from trajloom_hf import VisibilityPredictor\n"
                       f"head = VisibilityPredictor.from_pretrained(\"{load_path}\")  # or through TrajLoomPipeline"),
    }[kind]
    body = [
        f"# {title}: {model_name}", "",
        f"This is {what}", "",
        f"Trained with the `trajloom-hf` package on {record.data_description}, `{record.preset}` preset. "
        f"{num_parameters:,} parameters.", "",
        "## Intended use", "",
        "Research on dense future point-trajectory generation: a small, fully reproducible model that shows the whole "
        "TrajLoom method working end to end on a CPU, and a starting point for training at scale "
        "(`accelerate launch`). It is **not** a substitute for the paper's checkpoints on real video.", "",
        "```python", usage, "```", "",
        "## Training data and budget", "",
        f"- data: {record.data_description} (`{record.dataset}`, config `{record.dataset_config}`);",
        "- model config: `" + json.dumps({k: v for k, v in config.items() if not k.startswith("_")}, sort_keys=True) + "`;",
        "", "Reproduce everything (data, all models, evaluation) with one command:", "", "```bash", record.reproduce, "```",
        "", "The stage that trained this artefact:", "", _stages(record, stage_names), "",
    ]
    better = ("Lower is better." if not any(k in ("vis_accuracy", "occlusion_f1") for k in keys) else
              "Lower is better except for the visibility scores (future visibility against the tracker's, all "
              "samples; occlusion F1 is the F1 of the occluded class; the baselines hold each point's last history "
              "visibility, as does a pipeline without a visibility head, which also marks points that leave the frame).")
    body += ["## Results", "",
             f"Measured by `trajloom evaluate` on the held-out `{split}` split ({settings['num_clips']} clips, "
             f"{settings['history_frames']} history + {settings['future_frames']} future frames, "
             f"{settings['num_samples']} samples per clip, {settings['solver']} x {settings['num_inference_steps']} "
             f"steps). {better}", "", _table(results, keys, method), ""]
    if notes:
        body += [notes, ""]
    body += [
        "## Limitations", "",
        "- Trained only on synthetic scenes (textured shapes under camera pans, zooms, rolls and handheld shake); real "
        "video motion is far richer. Expect poor transfer to real footage.",
        f"- Tiny budget ({record.machine}, minutes): small model, short horizon, low resolution. The numbers are "
        "for comparing methods under the same budget, not with the paper's tables.",
        "- FVMD on a few dozen clips has a large variance; compare methods on the same split and seed.", "",
        _CONVERT, "", "## Citation", "", CITATION, "",
    ]
    return f"---\n{meta.to_yaml()}\n---\n\n" + "\n".join(body)


def write_model_card(path: PathLike, text: str) -> Path:
    """Write a card atomically (``README.md`` in a model folder)."""
    from .video_io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path
