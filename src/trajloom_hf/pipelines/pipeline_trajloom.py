"""TrajLoomPipeline: observed history in, sampled future tracks and visibility out (paper §3.3.4; reference §10).

    pipe = TrajLoomPipeline.from_pretrained("path/to/pipeline")
    out = pipe(history_tracks, history_visibility, num_samples=4, num_inference_steps=10, generator=torch.manual_seed(0))
    out.future_tracks        # [B, S, T_f, N, 2] pixels

Steps: normalise the history (fp32) -> ``vae.encode(...).latent_dist.mean`` -> ``vae.scale_latents`` ->
history latent visibility (any-pooled over the VAE's temporal stride, and *passed to the model*: the official
script forgets it, reference §8.2) -> optional video latents and pooled caption embedding -> the transformer
context, computed once per clip and shared by every ODE step and sample -> boundary-anchored source ``z_0`` ->
Euler / Heun / DOPRI5 -> ``vae.unscale_latents`` -> ``vae.decode(clamp=True)`` -> optional temporal smoothing -> pixels -> visibility head.

Resolution, grid and horizon come from the component configs. Coordinates stay fp32 whatever dtype the models
run in. Noise is drawn on the CPU from ``generator`` and then moved, so a seed gives the same futures on CPU and CUDA
(the official script draws it on the device, reference §8.14).

History window and forecast start: the model was trained with the history starting at the query frame (frame 0
of every history is the query grid, the tracker's start). A longer history is cut to its last
``vae.config.num_frames`` frames with a warning: those frames no longer start on the grid, which the model never
saw. To forecast from any frame ``f`` of a video (the future starting at ``f + 1``), re-query the grid there::

    T = pipe.history_frames
    start = f - T + 1                                     # the history is frames start .. f
    tracks, vis = get_tracker("optical_flow").track(frames[start : f + 1], pipe.query_grid())   # trajloom_hf.tracking
    out = pipe(tracks, vis)                               # futures for frames f + 1 .. f + T_f

Horizons past one window (``num_windows=k``): the windows are rolled out one after the other, window ``j + 1``
conditioned on the last ``history_frames`` frames of (history + forecast so far), predicted visibility included,
each sample continuing its own forecast; the query grid stays the frame-0 grid, so the Grid-Anchor offsets of a
later history are displacements from the original anchors. Such histories do not start at the query frame: models
trained with ``--window_start random`` (:mod:`trajloom_hf.training.window_datasets`) have seen them. The frames of
later windows are unknown: ``rollout_video="hold_last"`` (default) holds the last observed frame, ``"none"`` drops the
video context. Errors compound window by window (``benchmarks/bench_long_horizon.py`` measures how much).

History points outside the frame: leaving the frame is normal in tracking data, so such points are kept and
marked invisible (the official in-bounds test, reference §1.7); non-finite coordinates, or coordinates more than
three frame sizes away (tracks in another frame's pixels), are a ``ValueError``. Output coordinates are clipped to
``[0, W-1-1e-3] x [0, H-1-1e-3]`` after the in-frame visibility test, as the official pipeline does (reference §4).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput, logging

from ..encoding import (clip_to_frame, denormalize_tracks, first_frame_history, in_frame, last_frame_history,
                        latent_visibility, make_query_grid, normalize_tracks, upsample_latent_time)
from ..json_files import read_json_object
from ..models.autoencoder_traj import AutoencoderTraj
from ..models.frame_encoder import FrameEncoder
from ..models.transformer_traj_flow import TrajFlowTransformer
from ..models.visibility_predictor import VisibilityPredictor
from ..precision import resolve_dtype
from .hub_layout import is_own_layout, write_hub_layout
from ..schedulers import FlowMatchTrajScheduler
from ..schedulers.scheduling_flow_match_traj import SOLVERS
from ..track_smoothing import check_sigma, smooth_tracks_in_time
from ..boundary_continuity import check_tau, continue_history
from ..validation import (check_finite_parameters, check_probability, check_tracks, check_uint8_video,
                          check_visibility)

logger = logging.get_logger(__name__)

HISTORY_MODES = ("tracks", "last_frame", "first_frame")
# what the official run_trajloom_generator.py does (reference §3.11, §6.1), for official_compat=True
OFFICIAL_NUM_STEPS = 100
OFFICIAL_NOISE_SEED = 42
VISIBILITY_MODES = ("auto", "head", "hold_last")
# what the frame conditioning of windows 2.. gets (their frames are in the future, unseen): see __call__
ROLLOUT_VIDEO_MODES = ("hold_last", "none")

try:  # diffusers >= 0.36 takes `dtype=` and deprecates `torch_dtype=`
    from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401

    _DIFFUSERS_TAKES_DTYPE = True
except ImportError:
    _DIFFUSERS_TAKES_DTYPE = False


@dataclass
class TrajLoomPipelineOutput(BaseOutput):
    """``future_tracks`` ``[B, S, T_f, N, 2]`` px (fp32, clipped to the frame); ``future_visibility``
    ``[B, S, T_f, N]`` bool (the pipeline's ``visibility_mode``); ``visibility_prob`` ``[B, S, T_f, N]`` (the head's
    probability; None when the head is not run); ``future_in_frame`` ``[B, S, T_f, N]`` bool: the predicted point lies
    inside the frame before clipping (so ``held & future_in_frame`` is the hold-last reading)."""

    future_tracks: Union[np.ndarray, torch.Tensor]
    future_visibility: Union[np.ndarray, torch.Tensor]
    visibility_prob: Optional[Union[np.ndarray, torch.Tensor]]
    future_in_frame: Optional[Union[np.ndarray, torch.Tensor]] = None


_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                 "diffusion_pytorch_model.bin", "diffusion_pytorch_model.bin.index.json")


def check_config_types(cls, config: dict, where: str) -> None:
    """Values of ``config`` (a ``config.json``) must have the types of ``cls.__init__``'s defaults: a ``"4"`` where
    an int belongs would otherwise fail deep inside torch with an unrelated message."""
    import inspect

    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name not in config or param.default is inspect.Parameter.empty or param.default is None:
            continue
        value, default = config[name], param.default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) or \
                (isinstance(value, str) and "str" in str(param.annotation))  # Union[float, str]: offset_scale "grid"
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, (tuple, list)):
            ok = isinstance(value, (tuple, list))
        else:
            continue
        if not ok and not (value is None and name in ("latents_mean", "latents_std")):
            raise TypeError(f"{where}: `{name}` must be {type(default).__name__} (like the default {default!r}), got "
                            f"{value!r} ({type(value).__name__})")


def check_pipeline_folder(path) -> None:
    """Raise a named error for what is wrong with a saved pipeline folder before diffusers reads it: the folder
    does not exist, ``model_index.json`` is missing or corrupt, a listed component folder, its config or its
    weights file is missing, or a config value has the wrong type (optional components saved as ``[null, null]``
    are skipped)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"pipeline folder {path!r} does not exist")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"pipeline folder {path!r} is not a folder")
    index = os.path.join(path, "model_index.json")
    if not os.path.isfile(index):
        raise FileNotFoundError(f"pipeline folder {path!r} has no model_index.json")
    entries = read_json_object(index, "pipeline index", "components")
    ours = {"AutoencoderTraj": AutoencoderTraj, "TrajFlowTransformer": TrajFlowTransformer,
            "VisibilityPredictor": VisibilityPredictor, "FrameEncoder": FrameEncoder}
    for name, value in entries.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        folder = os.path.join(path, name)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"pipeline folder {path!r} lists component `{name}` ({value[1]}) but has no "
                                    f"{name}/ folder")
        cls = ours.get(value[1])
        if cls is None:
            continue
        cfg_path = os.path.join(folder, "config.json")
        if not os.path.isfile(cfg_path):
            raise FileNotFoundError(f"component `{name}` of {path!r} has no config.json")
        check_config_types(cls, read_json_object(cfg_path, f"`{name}` config", "model arguments"), f"{cfg_path}")
        if not any(os.path.isfile(os.path.join(folder, f)) for f in _WEIGHT_FILES):
            raise FileNotFoundError(f"component `{name}` of {path!r} has no weights file ({_WEIGHT_FILES[0]} is "
                                    "missing)")


def _looks_local(path: str) -> bool:
    """A path (not a Hub repo id ``owner/name``) that does not exist: say so instead of asking the Hub."""
    return os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1 or (os.sep != "/" and os.sep in path)


class TrajLoomPipeline(DiffusionPipeline):
    r"""Dense future point-trajectory generation with TrajLoom.

    Components:
        vae ([`AutoencoderTraj`]): track VAE with latent statistics in its config.
        transformer ([`TrajFlowTransformer`]): the flow velocity network.
        scheduler ([`FlowMatchTrajScheduler`]): rectified-flow ODE solver and source distribution.
        visibility_predictor ([`VisibilityPredictor`], optional): future visibility head.
        video_vae (diffusers `AutoencoderKLWan`, optional), text_encoder + tokenizer (transformers, optional):
            video and caption conditioning (see :mod:`trajloom_hf.video_conditioning` / ``text_conditioning``).
        frame_encoder ([`FrameEncoder`], optional): image encoder trained with the transformer; its token-aligned
            features of the history frames are the transformer's video input (instead of a ``video_vae``; see
            :mod:`trajloom_hf.frame_conditioning`).
        history_mode: ``"tracks"`` (TrajLoom: the observed motion; with a frame encoder, one frame per latent
            step), ``"last_frame"`` (the WHN-style image baseline: the points' positions and visibility at the
            forecast start held still, and with a frame encoder only that frame's image: appearance, no motion) or
            ``"first_frame"`` (frame 0 of the history held still; on tracked clips frame 0 is the query grid of
            every clip, so this conditioning carries no information about the clip).
        visibility_mode: how ``future_visibility`` is made, always AND the in-frame test of the predicted tracks:
            ``"head"`` (the visibility predictor), ``"hold_last"`` (each point's last history visibility held, the
            trivial baseline) or ``"auto"`` (default: the head when the pipeline has one, else hold-last).
        temporal_smoothing: sigma in frames of a Gaussian low-pass of the decoded tracks along time
            (:mod:`trajloom_hf.track_smoothing`: removes decoder jitter; 0, the default, is off).
        boundary_continuity: ``tau`` in frames of the pixel-space join of each decoded window onto its history
            (:mod:`trajloom_hf.boundary_continuity`: the offset of future frame 0 from the first constant-velocity
            step of the history the model sees is removed with weight ``exp(-t / tau)``; ``inf`` a constant shift;
            0, the default, is off; not in the paper).
    """

    model_cpu_offload_seq = "text_encoder->video_vae->frame_encoder->vae->transformer->visibility_predictor"
    _optional_components = ["visibility_predictor", "video_vae", "text_encoder", "tokenizer", "frame_encoder"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        vae: AutoencoderTraj,
        transformer: TrajFlowTransformer,
        scheduler: FlowMatchTrajScheduler,
        visibility_predictor: Optional[VisibilityPredictor] = None,
        video_vae=None,
        text_encoder=None,
        tokenizer=None,
        frame_encoder: Optional[FrameEncoder] = None,
        history_mode: str = "tracks",
        visibility_mode: str = "auto",
        temporal_smoothing: float = 0.0,
        boundary_continuity: float = 0.0,
    ):
        super().__init__()
        temporal_smoothing = check_sigma(temporal_smoothing)
        boundary_continuity = check_tau(boundary_continuity)
        if visibility_mode not in VISIBILITY_MODES:
            raise ValueError(f"`visibility_mode` must be one of {VISIBILITY_MODES}, got {visibility_mode!r}")
        if visibility_mode == "head" and visibility_predictor is None:
            raise ValueError("`visibility_mode='head'` needs a `visibility_predictor`")
        if history_mode not in HISTORY_MODES:
            raise ValueError(f"`history_mode` must be one of {HISTORY_MODES}, got {history_mode!r}")
        if frame_encoder is not None:
            if video_vae is not None:
                raise ValueError("give either a `video_vae` or a `frame_encoder` (both fill the transformer's video input)")
            if history_mode == "first_frame":
                raise ValueError("a `frame_encoder` needs history_mode 'tracks' or 'last_frame', got 'first_frame'")
            cfg = transformer.config
            if not cfg.use_video_cond or cfg.video_latent_channels != frame_encoder.config.out_channels:
                raise ValueError(f"`frame_encoder` gives {frame_encoder.config.out_channels} channels; the transformer "
                                 f"needs use_video_cond=True with video_latent_channels equal to it (has "
                                 f"use_video_cond={cfg.use_video_cond}, video_latent_channels={cfg.video_latent_channels})")
            if (frame_encoder.config.height, frame_encoder.config.width) != (vae.config.height, vae.config.width) or \
                    tuple(frame_encoder.grid_hw) != tuple(vae.grid_hw):
                raise ValueError(f"`frame_encoder` works on {frame_encoder.config.height}x{frame_encoder.config.width} "
                                 f"frames, grid {tuple(frame_encoder.grid_hw)}; the vae on {vae.config.height}x"
                                 f"{vae.config.width}, grid {tuple(vae.grid_hw)}")
        self.register_to_config(history_mode=history_mode, visibility_mode=visibility_mode,
                                temporal_smoothing=temporal_smoothing, boundary_continuity=boundary_continuity)
        self.register_modules(vae=vae, transformer=transformer, scheduler=scheduler,
                              visibility_predictor=visibility_predictor, video_vae=video_vae,
                              text_encoder=text_encoder, tokenizer=tokenizer, frame_encoder=frame_encoder)
        k, n, c = transformer.latent_shape
        if (vae.num_latent_frames, vae.grid_hw[0] * vae.grid_hw[1], vae.config.latent_channels) != (k, n, c):
            raise ValueError(
                f"`vae` latents [K={vae.num_latent_frames}, N={vae.grid_hw[0] * vae.grid_hw[1]}, C={vae.config.latent_channels}] "
                f"do not match the `transformer` latents [K={k}, N={n}, C={c}]"
            )
        # the transformer's absolute-time embeddings place history latent k at frame stride * k and the future after
        # history_num_frames frames: a transformer trained with another VAE window runs but forecasts wrongly
        tcfg = transformer.config
        if (tcfg.history_num_frames, tcfg.temporal_stride) != (vae.config.num_frames, vae.config.temporal_stride):
            raise ValueError(
                f"`transformer` history_num_frames={tcfg.history_num_frames}, temporal_stride={tcfg.temporal_stride} do "
                f"not match the `vae` num_frames={vae.config.num_frames}, temporal_stride={vae.config.temporal_stride} "
                "(the transformer was built for another history window)")

    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers ``from_pretrained``; a local folder is first checked with :func:`check_pipeline_folder`, so that
        what is missing or wrong is named (diffusers reports a missing safetensors file as a missing ``.bin``, a
        missing folder as a Hub lookup failure, and a wrongly typed config value from deep inside torch).

        ``torch_dtype=torch.bfloat16`` (or ``dtype=``, or a name such as ``"bfloat16"``) loads the model trunks in
        that dtype; each model's ``_keep_in_fp32_modules`` and every coordinate computation stay fp32. Without it
        the models load in fp32 (the diffusers convention)."""
        path = os.fspath(pretrained_model_name_or_path)
        if os.path.exists(path) or _looks_local(path):
            check_pipeline_folder(path)
        elif "trust_remote_code" not in kwargs:  # a Hub repo: fetch it, then read its layout as a local folder's
            from huggingface_hub import snapshot_download

            path = snapshot_download(path, revision=kwargs.pop("revision", None), cache_dir=kwargs.pop("cache_dir", None),
                                     token=kwargs.pop("token", None), local_files_only=kwargs.pop("local_files_only", False))
            check_pipeline_folder(path)
        if "trust_remote_code" not in kwargs and is_own_layout(path):
            # the folder's code files are exactly the entry points save_pretrained writes (imports of this package)
            kwargs["trust_remote_code"] = True
        for key in ("torch_dtype", "dtype"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = resolve_dtype(kwargs[key])
        if "torch_dtype" in kwargs and "dtype" not in kwargs and _DIFFUSERS_TAKES_DTYPE:
            kwargs["dtype"] = kwargs.pop("torch_dtype")  # diffusers >= 0.36 renamed it (and warns on the old name)
        return super().from_pretrained(path, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """diffusers ``save_pretrained``, then the remote-code layout (:mod:`trajloom_hf.pipelines.hub_layout`): the
        folder also loads with ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` and its models
        with ``diffusers.AutoModel.from_pretrained(f"{folder}/vae", trust_remote_code=True)``. With
        ``push_to_hub=True`` (``repo_id``, ``private``, ``token``, ``commit_message``, ``create_pr``) the finished
        folder is uploaded by :func:`trajloom_hf.hub.push_folder` (diffusers would upload before the layout)."""
        push = kwargs.pop("push_to_hub", False)
        push_args = {k: kwargs.pop(k) for k in ("private", "token", "commit_message", "create_pr") if k in kwargs}
        repo_id = kwargs.pop("repo_id", None)
        if push and repo_id is None:
            raise ValueError("`push_to_hub=True` needs `repo_id='owner/name'`")
        super().save_pretrained(save_directory, *args, **kwargs)
        write_hub_layout(save_directory)
        if push:
            from ..hub import push_folder

            push_folder(save_directory, repo_id, **push_args)

    @property
    def frame_size(self):
        return self.vae.config.height, self.vae.config.width

    @property
    def history_frames(self) -> int:
        return self.vae.config.num_frames

    def _prepare_history(self, history_tracks, history_visibility, check_query_grid: bool = True,
                         apply_history_mode: bool = True):
        """-> tracks ``[B, T, N, 2]`` fp32 px (last T frames), visibility ``[B, T, N]`` bool (AND in-frame); with
        ``apply_history_mode`` as the model sees them (:meth:`_history_view`), else as observed."""
        if not isinstance(history_tracks, (np.ndarray, torch.Tensor)):
            raise TypeError(f"`history_tracks` must be a numpy array or torch tensor, got {type(history_tracks).__name__}")
        if isinstance(history_tracks, np.ndarray) and not np.issubdtype(history_tracks.dtype, np.number):
            raise TypeError(f"`history_tracks` must hold pixel coordinates (float), got dtype {history_tracks.dtype}")
        tracks = torch.as_tensor(history_tracks) if not isinstance(history_tracks, torch.Tensor) else history_tracks
        if not (tracks.is_floating_point() or tracks.dtype in (torch.int16, torch.int32, torch.int64)):
            raise TypeError(f"`history_tracks` must hold pixel coordinates (float), got dtype {tracks.dtype}")
        check_tracks(tracks, "history_tracks", min_ndim=3, max_ndim=4)
        if tracks.ndim == 3:
            tracks = tracks[None]
            if history_visibility is not None:
                history_visibility = torch.as_tensor(history_visibility)[None]
        t_need, n_need = self.history_frames, self.vae.grid_hw[0] * self.vae.grid_hw[1]
        if tracks.shape[0] == 0:
            raise ValueError(f"`history_tracks` is a batch of zero clips (shape {list(tracks.shape)})")
        if tracks.shape[1] < t_need:
            raise ValueError(f"`history_tracks` has {tracks.shape[1]} frames; the pipeline needs at least {t_need} "
                             f"(vae.config.num_frames)")
        if tracks.shape[2] != n_need:
            raise ValueError(f"`history_tracks` has N={tracks.shape[2]} points; the {self.vae.grid_hw[0]}x{self.vae.grid_hw[1]} "
                             f"grid of the pipeline has N={n_need}")
        h, w = self.frame_size
        tracks = tracks.to(torch.float32)
        if (tracks[..., 0].abs() > 3 * w).any() or (tracks[..., 1].abs() > 3 * h).any():
            raise ValueError(f"`history_tracks` are far outside the {h}x{w} frame: are they pixels of that frame size?")
        if history_visibility is None:
            vis = torch.ones(tracks.shape[:-1], dtype=torch.bool)
        else:
            vis = torch.as_tensor(history_visibility)
            check_visibility(vis, tracks.shape, "history_visibility")
            vis = vis.bool()
        if check_query_grid:
            self._check_query_grid(tracks, vis)
        if tracks.shape[1] > t_need:
            warnings.warn(
                f"`history_tracks` has {tracks.shape[1]} frames; the model's history window is {t_need} frames "
                f"(vae.config.num_frames), so only the last {t_need} are used. The model was trained with the history "
                f"starting at the query grid: to forecast from frame f, track frames f-{t_need - 1}..f with the grid "
                f"queried at their first frame (see the TrajLoomPipeline module docstring).",
                UserWarning, stacklevel=4)  # _prepare_history <- __call__ <- no_grad wrapper <- caller
        tracks, vis = tracks[:, -t_need:], vis[:, -t_need:].to(tracks.device)
        vis = vis & in_frame(tracks, h, w)  # points outside the frame count as invisible (reference §1.7)
        return self._history_view(tracks, vis) if apply_history_mode else (tracks, vis)

    def _history_view(self, tracks: torch.Tensor, vis: torch.Tensor):
        """The history ``[B, T, N, 2]`` px / ``[B, T, N]`` as the model sees it: the pipeline's ``history_mode``
        applied (``last_frame`` / ``first_frame`` hold one frame still), visibility AND in-frame."""
        h, w = self.frame_size
        if self.config.history_mode == "first_frame":
            tracks, vis = first_frame_history(tracks, vis)
        elif self.config.history_mode == "last_frame":
            tracks, vis = last_frame_history(tracks, vis)
        return tracks, vis & in_frame(tracks, h, w)

    def _check_query_grid(self, tracks: torch.Tensor, vis: torch.Tensor) -> None:
        """Frame 0 of every history must sit on :meth:`query_grid` (the tracker's start): catches tracks in the
        wrong units (normalised [-1, 1], pixels of another frame size) or order, which otherwise run quietly."""
        from ..track_files import check_query_alignment

        h, w = self.frame_size
        query, stride = self.query_grid(), self.vae.config.patch_size
        t0, v0 = tracks[:, :1].cpu().numpy(), (vis[:, :1].cpu() & in_frame(tracks[:, :1].cpu(), h, w)).numpy()
        for i in range(t0.shape[0]):
            try:
                check_query_alignment(t0[i], v0[i], query, stride, name="history_tracks")
            except ValueError as err:
                raise ValueError(
                    f"{err} (clip {i}). The pipeline expects pixels of its {h}x{w} frame with frame 0 on "
                    "pipe.query_grid(); pass check_query_grid=False if the history deliberately starts elsewhere"
                ) from None

    def encode_history(self, history_tracks: torch.Tensor, history_visibility: torch.Tensor):
        """History px ``[B, T, N, 2]`` -> normalised latents ``[B, K, N, C]`` and latent visibility ``[B, K, N]``."""
        device = self._execution_device
        h, w = self.frame_size
        x = normalize_tracks(history_tracks.to(device), h, w)
        z = self.vae.encode(x).latent_dist.mean  # posterior mean (eq. 6)
        z = self.vae.scale_latents(z.float())
        lat_vis = latent_visibility(history_visibility.to(device), self.vae.config.temporal_stride).float()
        return z, lat_vis

    def encode_prompt(self, prompt: Union[str, List[str]], batch_size: int):
        """Pooled caption embedding ``[B, D_text]`` (masked mean of the text encoder's last hidden state)."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("`prompt` was given but the pipeline has no `text_encoder`/`tokenizer`")
        from ..text_conditioning import encode_pooled_text

        prompts = [prompt] * batch_size if isinstance(prompt, str) else list(prompt)
        if len(prompts) != batch_size:
            raise ValueError(f"`prompt` must be a string or {batch_size} strings, got {len(prompts)}")
        return encode_pooled_text(self.text_encoder, self.tokenizer, prompts, device=self._execution_device)

    def encode_video(self, video, batch_size: int):
        """Token-aligned video latents ``[B, K, N, C_v]`` of the history frames (``video_vae`` or ``frame_encoder``
        required)."""
        if self.frame_encoder is not None:
            return self.encode_frames(video, batch_size)
        if self.video_vae is None:
            raise ValueError("`video` was given but the pipeline has no `video_vae` or `frame_encoder`")
        check_uint8_video(video if isinstance(video, (np.ndarray, torch.Tensor)) else np.asarray(video))
        from ..video_conditioning import encode_video_latents

        return encode_video_latents(self.video_vae, video, self.frame_size, self.vae.grid_hw, self.history_frames,
                                    batch_size=batch_size, device=self._execution_device)

    def encode_frames(self, video, batch_size: int) -> torch.Tensor:
        """``frame_encoder`` features ``[B, K, N, C]`` of the history video ``[T, H, W, 3]`` / ``[B, T, H, W, 3]``
        (uint8, at the tracks' frame size; the last ``history_frames`` frames are the history)."""
        from ..frame_conditioning import conditioning_frames, frame_tokens

        check_uint8_video(video if isinstance(video, (np.ndarray, torch.Tensor)) else np.asarray(video))
        v = torch.as_tensor(np.asarray(video)) if not isinstance(video, torch.Tensor) else video
        if v.ndim == 4:
            v = v[None]
        if v.ndim != 5 or v.shape[-1] != 3:
            raise ValueError(f"`video` must have shape [T, H, W, 3] or [B, T, H, W, 3], got {list(v.shape)}")
        if v.shape[0] != batch_size:
            raise ValueError(f"`video` has {v.shape[0]} clips, the tracks have {batch_size}")
        h, w = self.frame_size
        if tuple(v.shape[2:4]) != (h, w):
            raise ValueError(f"`video` frames must be {h}x{w} (the tracks' frame), got {v.shape[2]}x{v.shape[3]}")
        frames = conditioning_frames(v, self.history_frames, self.vae.config.temporal_stride, self.config.history_mode)
        return frame_tokens(self.frame_encoder, frames.to(self._execution_device), self.vae.num_latent_frames).float()

    # ------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        history_tracks,
        history_visibility=None,
        video=None,
        prompt: Optional[Union[str, List[str]]] = None,
        num_samples: int = 1,
        num_inference_steps: Optional[int] = None,
        solver: str = "euler",
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Optional[Callable[..., Dict]] = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        visibility_threshold: Optional[float] = None,
        visibility_mode: Optional[str] = None,
        check_query_grid: bool = True,
        official_compat: bool = False,
        num_windows: int = 1,
        rollout_video: str = "hold_last",
        temporal_smoothing: Optional[float] = None,
        fix_first_latent: Optional[bool] = None,
        boundary_continuity: Optional[float] = None,
    ):
        r"""Sample ``num_samples`` futures per clip in one batched pass.

        Args:
            history_tracks: ``[T, N, 2]`` or ``[B, T, N, 2]`` pixels (numpy or torch), ``T = vae.config.num_frames``
                frames starting at the query grid; a longer history is cut to its last ``num_frames`` frames with a
                warning (to forecast from a later frame, re-track from there: see the module docstring).
            history_visibility: ``[T, N]`` / ``[B, T, N]`` bool, or None (all visible); out-of-frame points are
                treated as invisible.
            video: history frames ``[T, H, W, 3]`` / ``[B, T, H, W, 3]`` uint8 at the tracks' frame size (needs
                ``video_vae`` or ``frame_encoder``; with ``history_mode="last_frame"`` only the last one is used).
            prompt: caption(s) (needs ``text_encoder`` + ``tokenizer``); with a text encoder, None means the
                empty caption (the official default).
            num_samples: futures per clip ``S``.
            num_inference_steps, solver: ODE steps (default 10; 100 with ``official_compat``) and solver:
                ``"euler"``, ``"heun"``, ``"dopri5"`` (that many fixed Dormand–Prince steps, App. D.4's "DOPRI5 with
                100 steps") or ``"dopri5_adaptive"`` (the official adaptive solver, rtol = atol = 1e-5; ignores the
                step count).
            generator: a CPU ``torch.Generator`` for reproducible sources, or a list with one per clip (then each
                clip's futures are independent of the rest of the batch).
            output_type: ``"np"`` or ``"pt"``.
            callback_on_step_end: ``fn(pipe, step, t, {"latents": z}) -> dict`` after each ODE step (Euler/Heun;
                ``t`` is the flow time the step started from); a returned ``"latents"`` replaces the state (it must
                be a finite tensor of the same shape).
            visibility_threshold: probability in ``[0, 1]`` above which a future point is visible (default: the
                visibility head's ``config.threshold``).
            visibility_mode: ``"head"``, ``"hold_last"`` or ``"auto"`` (default: the pipeline's config; see the class).
            check_query_grid: require frame 0 of every history to lie on :meth:`query_grid` (median distance of the
                visible points <= stride / 4), which catches tracks in the wrong units or frame size; False for a
                history that deliberately starts at a later frame.
            official_compat: reproduce the official ``run_trajloom_generator.py`` choices, to check a converted
                checkpoint against published outputs (reference §3.11, §6.1): the history visibility is *not*
                passed to the transformer, ``num_inference_steps`` defaults to 100 (Euler), and without a
                ``generator`` every clip's source is drawn on the execution device from a generator seeded 42 (the
                same seed for every video). The official script also casts the models to fp16: load the pipeline
                with ``torch_dtype=torch.float16`` on CUDA for that (on CPU fp32 is the closest). Default False:
                our fixed behaviour (visibility passed, 10 steps, CPU noise identical on every device).
            num_windows: forecast windows ``k`` rolled out one after the other (default 1, the paper's single
                window). Window ``j + 1`` starts where window ``j`` ends: its history is the last
                ``history_frames`` frames of (history + forecast so far), tracks and the predicted visibility, and
                each sample continues from its own forecast. The query grid and the Grid-Anchor offsets stay those of
                frame 0 of the observed history. ``generator`` keeps drawing over the windows, ``callback_on_step_end``
                is called in every window (its step index restarts), and the futures are concatenated on the time
                axis: ``k * future_frames`` frames. Models trained only on windows that start at the query frame see
                such later histories out of distribution: train with ``--window_start random`` (see
                :mod:`trajloom_hf.training.window_datasets`).
            rollout_video: what the frame conditioning of windows 2.. gets, whose frames lie in the unseen future:
                ``"hold_last"`` (default; the last observed frame stands for every frame after the given video, so
                a window whose history still overlaps the observed video keeps those frames) or ``"none"`` (no video
                context: zeros, as the transformer reads a missing video). Ignored without ``video``.
            temporal_smoothing: sigma in frames of the Gaussian low-pass of the decoded tracks along time, before
                the in-frame test (default: the pipeline's config, 0 = off; see :mod:`trajloom_hf.track_smoothing`).
            fix_first_latent: hold the first future latent at the last history latent during the whole ODE (its
                state is set to it before every model evaluation and its velocity zeroed: the official
                ``--fix_first_frame``, reference §3.11). Default: the scheduler's ``config.fix_first_latent``
                (False, as the official default).
            boundary_continuity: ``tau`` (frames) of the join of each window's decoded tracks onto its history,
                after the smoothing and before the in-frame test (default: the pipeline's config, 0 = off; see
                :mod:`trajloom_hf.boundary_continuity`).
        Returns:
            :class:`TrajLoomPipelineOutput` (or a tuple ``(tracks, visibility, prob, in_frame)``); its time axis holds
            ``num_windows * future_frames`` frames.
        """
        if output_type not in ("np", "pt"):
            raise ValueError(f"`output_type` must be 'np' or 'pt', got {output_type!r}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"`num_samples` must be a positive integer, got {num_samples!r}")
        num_samples = int(num_samples)
        if not isinstance(official_compat, bool):
            raise TypeError(f"`official_compat` must be True or False, got {official_compat!r}")
        if num_inference_steps is None:
            num_inference_steps = OFFICIAL_NUM_STEPS if official_compat else 10
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, (int, np.integer)) \
                or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}")
        check_probability(visibility_threshold, "visibility_threshold", allow_none=True)
        gens = generator if isinstance(generator, (list, tuple)) else [generator]
        for g in gens:
            if g is not None and not isinstance(g, torch.Generator):
                raise TypeError(f"`generator` must be a torch.Generator (or a list of them, one per clip), got "
                                f"{type(g).__module__}.{type(g).__name__}")
        if isinstance(generator, (list, tuple)) and any(g is None for g in generator):
            raise TypeError("`generator` list holds None: give one torch.Generator per clip")
        if solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}, got {solver!r}")
        vis_mode = self.resolve_visibility_mode(visibility_mode)
        sigma = self.resolve_temporal_smoothing(temporal_smoothing)
        tau = self.resolve_boundary_continuity(boundary_continuity)
        if fix_first_latent is None:
            fix_first_latent = self.scheduler.config.get("fix_first_latent", False)
        if not isinstance(fix_first_latent, bool):
            raise TypeError(f"`fix_first_latent` must be True, False or None, got {fix_first_latent!r}")
        bad = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if bad:
            raise ValueError(f"`callback_on_step_end_tensor_inputs` may only hold {self._callback_tensor_inputs}, got {sorted(bad)}")
        device = self._execution_device
        num_windows = self.check_num_windows(num_windows)
        if rollout_video not in ROLLOUT_VIDEO_MODES:
            raise ValueError(f"`rollout_video` must be one of {ROLLOUT_VIDEO_MODES}, got {rollout_video!r}")
        raw_tracks, raw_vis = self._prepare_history(history_tracks, history_visibility, check_query_grid,
                                                    apply_history_mode=False)
        tracks, vis = self._history_view(raw_tracks, raw_vis)
        b, s = tracks.shape[0], num_samples

        # 1. conditioning that does not change over the windows
        if prompt is None and self.text_encoder is not None and self.transformer.config.use_text_cond:
            prompt = ""  # the official default caption: an empty string still encodes its EOS token (reference §3.10)
        if video is None and self.frame_encoder is not None:
            raise ValueError("the pipeline conditions on the frames (`frame_encoder`): pass `video=` (the history frames)")
        if video is None and self.video_vae is not None and self.transformer.config.use_video_cond:
            logger.warning("the pipeline has a `video_vae` but no `video` was given: the video context is zeros")
        text = self.encode_prompt(prompt, b) if prompt is not None else None
        video_lat = self.encode_video(video, b) if video is not None else None
        if official_compat and generator is None:  # one fresh seed-42 generator per clip, kept over the windows
            generator = [torch.Generator(device=device).manual_seed(OFFICIAL_NOISE_SEED) for _ in range(b)]
        if isinstance(generator, (list, tuple)) and len(generator) != b:
            raise ValueError(f"`generator` list must have one generator per clip ({b}), got {len(generator)}")
        step_args = dict(num_inference_steps=num_inference_steps, solver=solver, generator=generator,
                         official_compat=official_compat, callback_on_step_end=callback_on_step_end,
                         callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, vis_mode=vis_mode,
                         visibility_threshold=visibility_threshold, group=s, sigma=sigma, fix_first=fix_first_latent, tau=tau)

        # 2. window 1: the observed history, S samples per clip
        px, fut_vis, prob, inside = self._sample_window(tracks, vis, video_lat, text, repeat=s, **step_args)
        windows = [(px, fut_vis, prob, inside)]
        # 3. windows 2..k: each sample continues from its own forecast (the last history_frames frames of history +
        # forecast so far, visibility included; the query grid and the anchors stay those of frame 0, so the VAE's
        # Grid-Anchor offsets of a later history are displacements from the original grid, as in training windows
        # that start after the query frame). The frames after the observed video are unknown: see `rollout_video`.
        if num_windows > 1:
            t_h = self.history_frames
            roll_tracks = [raw_tracks.to(device).repeat_interleave(s, dim=0)]
            roll_vis = [raw_vis.to(device).repeat_interleave(s, dim=0)]
            text_rep = None if text is None else text.repeat_interleave(s, dim=0)
            video_cache = {}
            for j in range(1, num_windows):
                roll_tracks.append(px)
                roll_vis.append(fut_vis)
                hist_t, hist_v = torch.cat(roll_tracks, 1)[:, -t_h:], torch.cat(roll_vis, 1)[:, -t_h:]
                roll_tracks, roll_vis = [hist_t], [hist_v]
                view_t, view_v = self._history_view(hist_t, hist_v)
                lat = None
                if video is not None and rollout_video == "hold_last":
                    idx = self._rollout_frame_index(video, j, px.shape[1])
                    if idx not in video_cache:  # encoded once per clip; the rows are per sample because the
                        # context is (each sample's own history enters it): 0.5 MB of video latents per sample at
                        # the paper size (21 x 390 x 16 fp32) beside its ~0.8 GB of cross-attention K/V
                        video_cache[idx] = self.encode_video(self._rollout_video(video, idx), b).repeat_interleave(s, 0)
                    lat = video_cache[idx]
                px, fut_vis, prob, inside = self._sample_window(view_t, view_v, lat, text_rep, repeat=1, **step_args)
                windows.append((px, fut_vis, prob, inside))

        def joined(i):
            parts = [w[i] for w in windows]
            return None if parts[0] is None else torch.cat(parts, 1)

        px, fut_vis, prob, inside = joined(0), joined(1), joined(2), joined(3)
        shape = (b, s) + tuple(px.shape[1:])
        out_tracks = px.reshape(shape)
        out_vis = fut_vis.reshape(shape[:-1])
        out_prob = None if prob is None else prob.reshape(shape[:-1])
        out_inside = inside.reshape(shape[:-1])
        if output_type == "np":
            out_tracks, out_vis, out_inside = out_tracks.cpu().numpy(), out_vis.cpu().numpy(), out_inside.cpu().numpy()
            out_prob = None if out_prob is None else out_prob.cpu().numpy()
        self.maybe_free_model_hooks()
        if not return_dict:
            return out_tracks, out_vis, out_prob, out_inside
        return TrajLoomPipelineOutput(future_tracks=out_tracks, future_visibility=out_vis, visibility_prob=out_prob,
                                      future_in_frame=out_inside)

    def _sample_window(self, tracks, vis, video_lat, text, *, repeat, group, num_inference_steps, solver, generator,
                       official_compat, callback_on_step_end, callback_on_step_end_tensor_inputs, vis_mode,
                       visibility_threshold, sigma=0.0, fix_first=False, tau=0.0):
        """One forecast window. ``tracks`` ``[R, T_h, N, 2]`` px / ``vis`` ``[R, T_h, N]``: the history as the model
        sees it (history mode applied), ``R`` histories, each sampled ``repeat`` times; a generator list holds one
        generator per ``group`` consecutive rows of the ``R * repeat`` samples (one per clip). Returns future px
        ``[R * repeat, T_f, N, 2]`` (smoothed along time with ``sigma`` frames, joined onto the history with
        ``tau`` frames, clipped to the frame), visibility,
        probability (or None), in-frame."""
        device = self._execution_device
        z_hist, lat_vis = self.encode_history(tracks, vis)
        # the official script never passes the history visibility (reference §8.2): official_compat reproduces that
        hist_vis = None if official_compat else lat_vis
        # once per window: every ODE step and the `repeat` samples of a history reuse it (the transformer broadcasts
        # a context of batch R over the R * repeat samples, sample-major, without copying it)
        context = self.transformer.prepare_context(z_hist, hist_vis, video_lat, text)

        # source z0 (boundary anchoring, eq. 7), drawn on the CPU for device-independent seeds (official_compat:
        # on the device of the generator, by default a fresh seed-42 generator on the execution device per clip)
        z_hist_rep = z_hist.repeat_interleave(repeat, dim=0).float()
        if official_compat:
            first = generator[0] if isinstance(generator, (list, tuple)) else generator
            z_hist_rep = z_hist_rep.to(first.device)
        else:
            z_hist_rep = z_hist_rep.cpu()
        if isinstance(generator, (list, tuple)):  # one generator per clip: a clip's futures do not depend on the batch
            z = torch.cat([self.scheduler.sample_source(z_hist_rep[i * group : (i + 1) * group], generator=g)
                           for i, g in enumerate(generator)])
        else:
            z = self.scheduler.sample_source(z_hist_rep, generator=generator)
        z = z.to(device)
        if fix_first:  # the official --fix_first_frame: the first future latent is the last history latent
            held = z_hist_rep[:, -1].to(device)
            z[:, 0] = held

        # integrate the ODE from t = 0 to 1
        def velocity(zt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if fix_first:  # every evaluation sees the held slice (a callback may have moved it), which does not move
                zt = zt.clone()
                zt[:, 0] = held
            v = self.transformer(zt, t, context=context).sample.float()
            if fix_first:
                v[:, 0] = 0
            return v

        if solver in ("dopri5", "dopri5_adaptive"):
            z = self.scheduler.sample(velocity, z, num_inference_steps, solver=solver).sample
        else:
            self.scheduler.set_timesteps(num_inference_steps, device=device, solver=solver)
            timesteps, order = self.scheduler.timesteps, self.scheduler.order
            # Heun evaluates twice per ODE step; the bar and the callback follow whole steps, so a callback never
            # sees (or edits) the predictor's intermediate state
            with self.progress_bar(total=len(timesteps) // order) as bar:
                for i, t in enumerate(timesteps):
                    v = velocity(z, self.scheduler.model_timestep(t, z.shape[0], device=device))
                    z = self.scheduler.step(v, t, z).prev_sample
                    if (i + 1) % order:
                        continue
                    if callback_on_step_end is not None:
                        t_step = timesteps[i + 1 - order]  # the step's start time, as diffusers passes it
                        out = callback_on_step_end(self, i // order, t_step, {k: z for k in callback_on_step_end_tensor_inputs})
                        new = out.pop("latents", z) if isinstance(out, dict) else z
                        if not isinstance(new, torch.Tensor) or new.shape != z.shape:
                            raise ValueError(f"`callback_on_step_end` must return a dict whose 'latents' is a tensor of "
                                             f"shape {list(z.shape)}, got {type(new).__name__} "
                                             f"{list(getattr(new, 'shape', []))}")
                        if not torch.isfinite(new).all():
                            raise ValueError(f"`callback_on_step_end` returned latents with NaN or inf at step {i // order}")
                        z = new
                    bar.update()

        # decode to pixels (fp32), then visibility
        h, w = self.frame_size
        if not torch.isfinite(z).all():
            self._raise_non_finite("the sampled latents")
        x = self.vae.decode(self.vae.unscale_latents(z.float()), clamp=True).sample
        if sigma > 0:
            x = smooth_tracks_in_time(x, sigma)
        px = denormalize_tracks(x.float(), h, w)  # [R*repeat, T_f, N, 2]
        if tau > 0:  # the history as the model saw it: a held-still view joins at the current positions
            px = continue_history(px, tracks.to(px.device).repeat_interleave(repeat, dim=0),
                                  vis.to(px.device).repeat_interleave(repeat, dim=0), tau)
        if not torch.isfinite(px).all():
            self._raise_non_finite("the decoded tracks")
        t_f = px.shape[1]
        inside = in_frame(px, h, w)  # points predicted outside the frame are invisible in every mode
        prob = None
        if vis_mode == "head":
            vp = self.visibility_predictor
            extra = {}
            if vp.uses_history:  # the history-residual head: hold-last prior + learnt correction
                extra = dict(history_latents=z_hist.repeat_interleave(repeat, dim=0),
                             history_visibility=vis.to(device).repeat_interleave(repeat, dim=0))
            logits = vp(z, **extra).logits  # [R*repeat, K, N]
            prob = upsample_latent_time(torch.sigmoid(logits.float()), t_f, self.vae.config.temporal_stride)
            thr = vp.config.threshold if visibility_threshold is None else visibility_threshold
            fut_vis = (prob > thr) & inside
        else:  # hold each point's last history visibility (the trivial baseline, :meth:`hold_last_visibility`)
            held = vis[:, -1].to(device).repeat_interleave(repeat, dim=0)  # [R*repeat, N]
            fut_vis = held[:, None, :] & inside
        # like the official script: coordinates clipped to the frame after the in-frame test
        px = clip_to_frame(px, h, w)
        return px, fut_vis, prob, inside

    @property
    def future_frames(self) -> int:
        """Frames ``T_f`` of one forecast window (the VAE's segment length)."""
        return self.vae.config.num_frames

    def check_num_windows(self, num_windows) -> int:
        """``num_windows`` as an int >= 1, else a ``ValueError`` naming it."""
        if isinstance(num_windows, bool) or not isinstance(num_windows, (int, np.integer)) or num_windows < 1:
            raise ValueError(f"`num_windows` must be a positive integer, got {num_windows!r}")
        return int(num_windows)

    def num_windows_for(self, horizon) -> int:
        """Windows needed for ``horizon`` future frames: ``ceil(horizon / future_frames)`` (the caller trims the
        last window to ``horizon``: ``out.future_tracks[:, :, :horizon]``); a ``ValueError`` naming ``horizon``
        for anything but a positive integer."""
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"`horizon` must be a positive number of frames, got {horizon!r}")
        return -(-int(horizon) // self.future_frames)

    def _rollout_frame_index(self, video, window: int, future_frames: int) -> tuple:
        """Indices into the time axis of ``video`` (whose last frame is the last observed one) of the history frames
        of window ``window`` (0-based; window 0 is the observed history): frames after the observed video, which
        nobody has seen, are the last observed frame held (``rollout_video="hold_last"``)."""
        t_v = int(video.shape[-4])
        start = t_v + window * future_frames - self.history_frames
        return tuple(min(t, t_v - 1) for t in range(start, start + self.history_frames))

    @staticmethod
    def _rollout_video(video, index: tuple):
        """``video`` ``[T, H, W, 3]`` / ``[B, T, H, W, 3]`` with its time axis taken at ``index``."""
        v = torch.as_tensor(np.asarray(video)) if not isinstance(video, torch.Tensor) else video
        return v.index_select(v.ndim - 4, torch.tensor(index, dtype=torch.long, device=v.device))

    def history_view(self, history_tracks, history_visibility=None):
        """The history as the model sees it (its ``history_mode`` applied, the last ``history_frames`` frames):
        tracks ``[B, T_h, N, 2]`` fp32 px and visibility ``[B, T_h, N]`` bool (AND in-frame), from history tracks
        ``[B, T, N, 2]`` / ``[T, N, 2]`` px. The reference :mod:`trajloom_hf.boundary_continuity` joins onto."""
        return self._prepare_history(history_tracks, history_visibility, check_query_grid=False)

    def hold_last_visibility(self, history_tracks, history_visibility=None) -> torch.Tensor:
        """``[B, N]`` bool: each point's visibility at the last frame of the history the model sees (AND in-frame;
        frame 0 with ``history_mode="first_frame"``), the state ``visibility_mode="hold_last"`` holds over the future."""
        _, vis = self._prepare_history(history_tracks, history_visibility, check_query_grid=False)
        return vis[:, -1]

    def resolve_temporal_smoothing(self, temporal_smoothing: Optional[float] = None) -> float:
        """The sigma (frames) a call smooths the decoded tracks with: ``temporal_smoothing``, or the config's
        (pipelines saved before the option have none: 0)."""
        if temporal_smoothing is None:
            temporal_smoothing = self.config.get("temporal_smoothing", 0.0)
        return check_sigma(temporal_smoothing)

    def resolve_boundary_continuity(self, boundary_continuity: Optional[float] = None) -> float:
        """The ``tau`` (frames) a call joins the decoded tracks onto the history with: ``boundary_continuity``, or
        the config's (pipelines saved before the option have none: 0, off)."""
        if boundary_continuity is None:
            boundary_continuity = self.config.get("boundary_continuity", 0.0)
        return check_tau(boundary_continuity)

    def resolve_visibility_mode(self, visibility_mode: Optional[str] = None) -> str:
        """``"head"`` or ``"hold_last"``: the mode a call uses (``None``: the config's; ``"auto"``: the head if any)."""
        mode = self.config.get("visibility_mode", "auto") if visibility_mode is None else visibility_mode
        if mode not in VISIBILITY_MODES:
            raise ValueError(f"`visibility_mode` must be one of {VISIBILITY_MODES}, got {mode!r}")
        if mode == "auto":
            return "head" if self.visibility_predictor is not None else "hold_last"
        if mode == "head" and self.visibility_predictor is None:
            raise ValueError("`visibility_mode='head'` but the pipeline has no `visibility_predictor`")
        return mode

    def _raise_non_finite(self, what: str) -> None:
        """A forecast turned NaN/inf from finite inputs: name the component whose weights are corrupt."""
        for name in ("vae", "transformer", "visibility_predictor", "video_vae", "text_encoder", "frame_encoder"):
            module = getattr(self, name, None)
            if isinstance(module, torch.nn.Module):
                check_finite_parameters(module, name)
        raise ValueError(f"{what} are NaN or inf although the inputs and weights are finite (an fp16 overflow? run "
                         "in float32 or bfloat16)")

    # ------------------------------------------------------------------------------------------------------------
    def query_grid(self) -> np.ndarray:
        """The query points ``[N, 2]`` px the pipeline's tracks are defined on (row-major grid at frame 0)."""
        h, w = self.frame_size
        return make_query_grid(h, w, self.vae.config.patch_size, self.vae.config.grid_origin)
