"""The official TrajLoom benchmark metrics as its scripts compute them: a loop over videos (and windows or frames),
written from the specification (trajloom-official-code.md §5.1-5.4, fvmd-official.md §5, §7) to time this package
against and to check that the values are equal. Not used by the package.

* FVMD (``compute_fvmd_from_trajectory.py``): per video, per window: velocity/acceleration of the window, masks,
  sub-cube histograms (reshape to ``[MS, MH, MW, 4*5*5]`` vectors, one pass per angle bin), then the Fréchet
  distance with dense covariances and eigendecompositions, eps = 1e-5 inside the square root.
* FlowTV / DivCurlE (``compute_trajectory_quality_metrics.py``): per video, per frame.
* VEPE (``compute_vae_recon_metrics.py``): per video, pooled over points.
"""

from __future__ import annotations

import numpy as np


def _window_fields(p, vis):
    vel = np.zeros_like(p)
    vel[1:] = p[1:] - p[:-1]
    acc = np.zeros_like(p)
    acc[2:] = vel[2:] - vel[1:-1]
    if vis is not None:
        mv = np.zeros(vis.shape, bool)
        mv[1:] = vis[1:] & vis[:-1]
        ma = np.zeros(vis.shape, bool)
        ma[2:] = mv[2:] & vis[:-2]
        vel = vel * mv[..., None]
        acc = acc * ma[..., None]
    return vel, acc


def _cube_histogram(field, gh, gw):
    s = field.shape[0]
    ms, mh, mw = s // 4, gh // 5, gw // 5
    g = field[: ms * 4].reshape(ms * 4, gh, gw, 2)[:, : mh * 5, : mw * 5]
    cubes = g.reshape(ms, 4, mh, 5, mw, 5, 2).transpose(0, 2, 4, 1, 3, 5, 6).reshape(ms, mh, mw, 100, 2)
    theta = np.arctan2(cubes[..., 0], cubes[..., 1])
    bins = np.clip(np.floor((theta + np.float32(np.pi)) / np.float32(np.pi / 4)), 0, 7)
    mag = np.clip(np.linalg.norm(cubes, axis=-1), 0, 255)
    weight = np.ceil(np.clip(np.log2(mag + np.float32(1)), 0, 8)) / np.float32(8)
    hist = np.zeros((ms, mh, mw, 8), np.float64)
    for b in range(8):
        hist[..., b] = (weight * (bins == b)).sum(-1)
    return hist.reshape(-1)


def _frechet(f1, f2, eps=1e-5):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    d = s1.shape[0]
    a, b = s1 + eps * np.eye(d), s2 + eps * np.eye(d)
    w, v = np.linalg.eigh(a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ b @ root
    covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * covmean)


def official_fvmd(pred, gt, vis, grid_shape, clip_len=16, clip_stride=15):
    """(velocity, acceleration, combined) trajectory-FVMD; ``vis`` (the GT visibility) masks both sets."""
    gh, gw = grid_shape
    feats = {"pred": ([], []), "gt": ([], [])}
    for i in range(len(gt)):
        t = gt.shape[1]
        length = t if clip_len <= 0 or clip_len >= t else clip_len
        for s in range(0, t - length + 1, clip_stride):
            for name, tracks in (("pred", pred), ("gt", gt)):
                vel, acc = _window_fields(tracks[i, s : s + length].astype(np.float32),
                                          None if vis is None else vis[i, s : s + length])
                feats[name][0].append(_cube_histogram(vel, gh, gw))
                feats[name][1].append(_cube_histogram(acc, gh, gw))
    (pv, pa), (gv, ga) = [(np.stack(a), np.stack(b)) for a, b in feats.values()]
    return (_frechet(pv, gv), _frechet(pa, ga),
            _frechet(np.concatenate([pv, pa], 1), np.concatenate([gv, ga], 1)))


def _video_fields(tracks, vis, grid_shape):
    gh, gw = grid_shape
    p = tracks.astype(np.float64).reshape(len(tracks), gh, gw, 2)
    ok = np.isfinite(p).all(-1)
    if vis is not None:
        ok &= vis.reshape(len(tracks), gh, gw) > 0.5
    return p, ok


def official_flow_tv(pred, vis, grid_shape, grid_stride):
    values = []
    for i in range(len(pred)):
        p, ok = _video_fields(pred[i], None if vis is None else vis[i], grid_shape)
        per_t = []
        for t in range(len(p) - 1):
            f = p[t + 1] - p[t]
            valid = ok[t + 1] & ok[t]
            terms = []
            vx = valid[:, 1:] & valid[:, :-1]
            if vx.any():
                terms.append((np.abs(f[:, 1:] - f[:, :-1]).sum(-1) / grid_stride)[vx].mean())
            vy = valid[1:] & valid[:-1]
            if vy.any():
                terms.append((np.abs(f[1:] - f[:-1]).sum(-1) / grid_stride)[vy].mean())
            per_t.append(sum(terms) if terms else np.nan)
        per_t = np.array(per_t)
        if np.isfinite(per_t).any():
            values.append(np.nanmean(per_t))
    return float(np.mean(values))


def official_div_curl(pred, vis, grid_shape, grid_stride):
    values = []
    for i in range(len(pred)):
        p, ok = _video_fields(pred[i], None if vis is None else vis[i], grid_shape)
        per_t = []
        for t in range(len(p) - 1):
            f = p[t + 1] - p[t]
            valid = ok[t + 1] & ok[t]
            u, v = f[..., 0], f[..., 1]
            dux = (u[:-1, 1:] - u[:-1, :-1]) / grid_stride
            dvx = (v[:-1, 1:] - v[:-1, :-1]) / grid_stride
            duy = (u[1:, :-1] - u[:-1, :-1]) / grid_stride
            dvy = (v[1:, :-1] - v[:-1, :-1]) / grid_stride
            cell = valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1]
            e = (dux + dvy) ** 2 + (dvx - duy) ** 2
            per_t.append(e[cell].mean() if cell.any() else np.nan)
        per_t = np.array(per_t)
        if np.isfinite(per_t).any():
            values.append(np.nanmean(per_t))
    return float(np.mean(values))


def official_vepe(pred, gt, vis):
    total, count = 0.0, 0
    for i in range(len(gt)):
        e = np.linalg.norm(pred[i].astype(np.float64) - gt[i].astype(np.float64), axis=-1)
        m = (vis[i] > 0.5) & np.isfinite(e)
        total += float(e[m].sum())
        count += int(m.sum())
    return total / count
