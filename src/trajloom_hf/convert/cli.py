"""``trajloom convert-official``: official TrajLoom ``.pt`` checkpoints -> diffusers-style folders.

Writes ``<out>/vae`` (:class:`AutoencoderTraj`, with the latent statistics when ``--latent-stats`` is given),
``<out>/transformer`` (:class:`TrajFlowTransformer`) and ``<out>/visibility_predictor``; with ``--pipeline`` the
folder is a loadable :class:`TrajLoomPipeline` (``model_index.json`` + ``scheduler``). ``.pt`` files are read with
``weights_only=True`` unless ``--trust-pickle`` is given. The output appears only once it is complete (written to a
temporary folder next to it, then renamed).

    trajloom convert-official --vae trajloom_vae.pt --vae-config trajloom_vae_config.json \
        --latent-stats vae_latent_stats.json --generator trajloom_generator.pt \
        --generator-config trajloom_generator_config.json --visibility-predictor visibility_predictor.pt \
        --pipeline --out trajloom-official
"""

from __future__ import annotations

import argparse

HELP = "convert the official TrajLoom checkpoints (.pt) to a diffusers-style pipeline folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--vae", help="trajloom_vae.pt")
    parser.add_argument("--vae-config", help="trajloom_vae_config.json (the VAE section trajloom_vae.config); without "
                        "it the sizes are read from the tensors and --num-heads is required")
    parser.add_argument("--latent-stats", help="vae_latent_stats.json (stored as latents_mean/latents_std)")
    parser.add_argument("--latent-stats-key", default="z_all", help="section of the stats file (the generator uses z_all)")
    parser.add_argument("--generator", help="trajloom_generator.pt")
    parser.add_argument("--generator-config", help="trajloom_generator_config.json")
    parser.add_argument("--visibility-predictor", help="visibility_predictor.pt")
    parser.add_argument("--visibility-config", help="vis_predictor_config.json")
    parser.add_argument("--pipeline", action="store_true", help="also write model_index.json + scheduler (needs --vae, "
                        "--latent-stats and --generator)")
    parser.add_argument("--num-heads", type=int, default=None, help="VAE attention heads when no --vae-config (the "
                        "weights do not determine it; the released VAE has 8)")
    parser.add_argument("--trust-pickle", action="store_true", help="load .pt files with weights_only=False (trusted files only)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier convert-official output in --out "
                        "(a folder holding other files is refused)")


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``convert-official`` on an ``argparse`` subparsers object (sets ``func=run``)."""
    parser = subparsers.add_parser("convert-official", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _read_json(path, flag: str):
    """The JSON object in the optional file of ``flag`` (None when the flag was not given)."""
    from ..json_files import read_json_object

    return None if path is None else read_json_object(path, f"`{flag}`", "official config values")


def _check_file(path, flag: str) -> None:
    import os

    if path is not None and not os.path.isfile(path):
        raise ValueError(f"`{flag}` file not found: {path}")


def convert_official(args: argparse.Namespace):
    """Build the converted components; returns a dict ``{name: model}`` (and ``scheduler`` with ``--pipeline``)."""
    from .autoencoder import convert_trajloom_vae, latent_stats_from_official
    from .flow import convert_trajloom_generator, convert_visibility_predictor

    if not (args.vae or args.generator or args.visibility_predictor):
        raise ValueError("nothing to convert: give at least one of --vae, --generator, --visibility-predictor")
    for path, flag in ((args.vae, "--vae"), (args.generator, "--generator"), (args.visibility_predictor, "--visibility-predictor")):
        _check_file(path, flag)
    if args.latent_stats and not args.vae:
        raise ValueError("`--latent-stats` needs `--vae` (the statistics are stored in the VAE config)")
    if args.pipeline and not (args.vae and args.generator and args.latent_stats):
        raise ValueError("`--pipeline` needs --vae, --latent-stats and --generator (the pipeline scales latents with them)")
    weights_only = not args.trust_pickle
    out = {}
    if args.vae:
        overrides = {}
        if args.latent_stats:
            overrides.update(latent_stats_from_official(_read_json(args.latent_stats, "--latent-stats"), args.latent_stats_key))
        if args.num_heads is not None:
            overrides["num_heads"] = args.num_heads
        out["vae"] = convert_trajloom_vae(args.vae, _read_json(args.vae_config, "--vae-config"), weights_only=weights_only, **overrides)
    if args.generator:
        grid = out["vae"].grid_hw if "vae" in out else None
        out["transformer"] = convert_trajloom_generator(args.generator, _read_json(args.generator_config, "--generator-config"), grid_size=grid,
                                                        weights_only=weights_only)
    if args.visibility_predictor:
        out["visibility_predictor"] = convert_visibility_predictor(
            args.visibility_predictor, _read_json(args.visibility_config, "--visibility-config"), weights_only=weights_only)
    if args.pipeline:
        from ..schedulers import FlowMatchTrajScheduler

        out["scheduler"] = FlowMatchTrajScheduler()
    return out


OUTPUT_NAMES = {"vae", "transformer", "visibility_predictor", "scheduler", "model_index.json",
                "pipeline_trajloom.py"}  # what run() writes (the last: the remote-code entry point, pipelines.hub_layout)


def run(args: argparse.Namespace) -> int:
    import os
    import shutil
    import tempfile
    from pathlib import Path

    target = Path(args.out)
    names = sorted(p.name for p in target.iterdir()) if target.is_dir() else []
    if names and not set(names) - OUTPUT_NAMES and not args.overwrite:
        raise ValueError(f"`--out` {target} exists and is not empty (pass --overwrite to replace it)")
    _check_out_folder(target)
    parts = convert_official(args)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a fresh private folder next to the target (mkdtemp: never one that exists), given the permissions the output
    # folder has (or a new folder would get), so the rename changes nothing a user set
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, (target.stat().st_mode & 0o7777) if target.exists() else 0o777 & ~umask)
    old = None
    try:
        if args.pipeline:
            from ..pipelines import TrajLoomPipeline

            TrajLoomPipeline(**parts).save_pretrained(tmp)
        else:
            for name, model in parts.items():
                model.save_pretrained(tmp / name)
        if target.exists():  # an empty folder or an earlier output of this command (checked above)
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    for name in sorted(parts):
        print(f"{name}: {target / name}")
    return 0


def _check_out_folder(target) -> None:
    """``--out`` is new, empty, or (checked by the caller with --overwrite) an earlier output; never other files."""
    import os

    if target.exists() and not target.is_dir():
        raise ValueError(f"`--out` {target} exists and is not a folder")
    names = sorted(p.name for p in target.iterdir()) if target.exists() else []
    foreign = [n for n in names if n not in OUTPUT_NAMES]
    if foreign:
        raise ValueError(f"`--out` {target} holds files this command did not write ({', '.join(foreign[:3])}"
                         f"{' ...' if len(foreign) > 3 else ''}); --overwrite replaces only an earlier convert-official "
                         "output: give a new or empty folder")
    parent = target.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"`--out` {target}: cannot write into {parent}")
