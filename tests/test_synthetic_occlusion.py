"""Proposed extra test (public API only): occlusion flags agree with the rendered pixels.

A visible point must show its frame-0 colour; a point flagged occluded (in frame, but invisible) must mostly not,
because a different surface is drawn over it. If occlusions were missed, the covered points would count as
visible and the share of visible points with a wrong colour would rise well above the tolerance.
"""

import cv2
import numpy as np

from trajloom_hf.data.synthetic import SceneConfig, generate_clip


def _colour_error(clip, t):
    q = clip.query_xy.astype(int)
    col0 = clip.frames[0][q[:, 1], q[:, 0]].astype(np.float32)
    # bilinear sampling at the sub-pixel track position (the renderer interpolates the same way)
    xy = clip.tracks[t].astype(np.float32)
    col = cv2.remap(clip.frames[t], xy[:, None, 0], xy[:, None, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.abs(col[:, 0].astype(np.float32) - col0).mean(1)


def test_occlusion_flags_agree_with_rendered_pixels():
    cfg = SceneConfig(height=96, width=160, num_frames=40, stride=8, num_objects=(4, 6))
    vis_err, occ_err = [], []
    for seed in range(6):
        clip = generate_clip(seed, cfg)
        x = clip.tracks
        inside = (x[..., 0] >= 0) & (x[..., 0] <= clip.width - 1) & (x[..., 1] >= 0) & (x[..., 1] <= clip.height - 1)
        for t in range(4, 40, 4):
            err = _colour_error(clip, t)
            vis_err.append(err[clip.visibility[t]])
            occ_err.append(err[inside[t] & ~clip.visibility[t]])
    vis_err, occ_err = np.concatenate(vis_err), np.concatenate(occ_err)
    wrong_visible = float((vis_err > 12).mean())
    right_occluded = float((occ_err <= 12).mean())
    print(f"visible with wrong colour {wrong_visible:.4f}; occluded with the old colour {right_occluded:.3f} ({occ_err.size})")
    # a few visible points sit within ~1.5 px of an anti-aliased occluder edge and get a blended colour (~1.3 %);
    # ignoring occlusion would add the ~5 % covered points to them
    assert wrong_visible < 0.03
    assert right_occluded < 0.2
    assert np.median(occ_err) > 20 * max(np.median(vis_err), 0.5)
    assert occ_err.size > 200  # the scenes do contain occlusions


def test_generator_speeds_fall_inside_the_estimator_buckets():
    # the generator draws rate * U(0.9, 1.1) (synthetic._camera); every such rate must lie inside its own bucket
    from trajloom_hf.camera_motion import SPEED_EDGES, SPEED_NAMES, SPEED_RATES

    for kind, rates in SPEED_RATES.items():
        upper = tuple(SPEED_EDGES[kind][1:]) + (np.inf,)
        for i, name in enumerate(SPEED_NAMES):
            lo, hi = SPEED_EDGES[kind][i], upper[i]
            assert lo < 0.9 * rates[name] and 1.1 * rates[name] < hi, (kind, name)
