"""The MuJoCo physics source: exact tracks agree with the rendered frames, the physics, and seeds."""

import numpy as np
import pytest

from trajloom_hf.data.physics import (CameraPath, ObjectSpec, PhysicsScene, PhysicsSceneConfig, generate_physics_clip,
                                      sample_scene)
from trajloom_hf.data.physics.scene import GRAVITY

CFG = PhysicsSceneConfig(height=64, width=96, num_frames=12, stride=8, num_objects=(4, 6))


def _hand_scene(cfg, objects, **camera):
    return PhysicsScene(objects, CameraPath.static(cfg.num_frames, **camera))


def _uniform_pixels(seg, xy):
    """Rounded pixels of ``xy`` [N, 2] whose 3x3 neighbourhood in ``seg`` [H, W] is one surface: (mask, id)."""
    h, w = seg.shape
    px = np.rint(xy).astype(int)
    ok = (px[:, 0] >= 1) & (px[:, 0] <= w - 2) & (px[:, 1] >= 1) & (px[:, 1] <= h - 2)
    ids = np.full(len(xy), -2)
    for n in np.nonzero(ok)[0]:
        x, y = px[n]
        nb = seg[y - 1: y + 2, x - 1: x + 2]
        if (nb == nb[1, 1]).all():
            ids[n] = nb[1, 1]
        else:
            ok[n] = False
    return ok, ids


@pytest.mark.parametrize("camera", ["static", "moving"])
def test_queries_project_back_and_visible_points_land_on_their_own_surface(camera):
    cfg = PhysicsSceneConfig(height=64, width=96, num_frames=12, stride=8, num_objects=(5, 7), camera=camera)
    clip = generate_physics_clip(3, cfg, segmentation=True, depth_map=True)
    t_, n = clip.tracks.shape[:2]
    assert clip.tracks.shape == (12, 8 * 12, 2) and clip.tracks.dtype == np.float32 and clip.visibility.dtype == bool
    # frame 0: the 3-D points project back onto their query pixels (the raw projection, not the stored track)
    xy0, _ = clip.cameras[0].project(clip.points_3d[0])
    assert np.abs(xy0 - clip.query_xy).max() <= 1e-3
    assert np.abs(clip.tracks[0] - clip.query_xy).max() <= 1e-3
    assert clip.visibility[0].all()
    # the floor's points lie on the floor; several queries land on objects
    assert np.abs(clip.points_3d[0, clip.surface_id == 0, 2]).max() < 1e-9
    assert (clip.surface_id > 0).sum() >= 5
    # every frame: a visible point's pixel shows its own surface (away from silhouettes), at its own depth
    checked = 0
    for t in range(t_):
        ok, ids = _uniform_pixels(clip.segmentation[t], clip.tracks[t])
        sel = ok & clip.visibility[t]
        np.testing.assert_array_equal(ids[sel], clip.surface_id[sel])
        px = np.rint(clip.tracks[t, sel]).astype(int)
        rendered = clip.depth_map[t, px[:, 1], px[:, 0]]
        # tessellated spheres/cylinders and the one-pixel rounding differ from the analytic surface by cm, not m
        assert np.abs(rendered - clip.depth[t, sel]).max() < 0.05 * clip.depth[t, sel].max()
        checked += sel.sum()
        # an in-frame point whose pixel shows another surface well in front of it is invisible
        other = ok & (ids != clip.surface_id) & (ids >= 0)
        px = np.rint(clip.tracks[t, other]).astype(int)
        in_front = clip.depth_map[t, px[:, 1], px[:, 0]] < clip.depth[t, other] - 0.1
        assert not clip.visibility[t, other][in_front].any()
    assert checked > 0.5 * t_ * n
    # far off-frame projections are clamped to one frame size beyond the borders (there they are invisible)
    assert (clip.tracks[..., 0] >= -96).all() and (clip.tracks[..., 0] <= 2 * 96 - 1).all()
    assert (clip.tracks[..., 1] >= -64).all() and (clip.tracks[..., 1] <= 2 * 64 - 1).all()
    if camera == "moving":  # the camera motion is in the data: the floor's points move on screen
        floor = clip.surface_id == 0
        assert np.abs(clip.tracks[-1, floor] - clip.tracks[0, floor]).max() > 1.0


def test_a_point_behind_a_falling_object_becomes_invisible():
    cfg = PhysicsSceneConfig(height=64, width=96, num_frames=16, stride=8)
    # a big sphere drops from above onto the look-at point between the camera and the floor behind it
    ball = ObjectSpec("sphere", "metal", (1.0,), (0.9, 0.2, 0.2), (0.0, 0.0, 4.0))
    scene = _hand_scene(cfg, [ball], distance=6.0, elevation=45.0)
    clip = generate_physics_clip(0, cfg, scene=scene, segmentation=True)
    floor = clip.surface_id == 0
    assert clip.visibility[0, floor].all()
    # the floor points at the image centre (where the ball lands) end up covered by the ball
    covered = floor & (clip.segmentation[-1][np.rint(clip.tracks[-1, :, 1]).astype(int),
                                             np.rint(clip.tracks[-1, :, 0]).astype(int)] == 1)
    assert covered.sum() >= 3
    assert not clip.visibility[-1, covered].any()
    assert clip.visibility[0, covered].all()
    # the floor does not move under a static camera: bit-identical tracks, whatever covers them
    np.testing.assert_array_equal(clip.tracks[:, floor], np.broadcast_to(clip.tracks[:1, floor], clip.tracks[:, floor].shape))


def test_a_resting_object_is_still_and_a_falling_one_accelerates_at_g():
    cfg = PhysicsSceneConfig(height=64, width=96, num_frames=10, stride=8, fps=16.0)
    resting = ObjectSpec("cube", "rubber", (0.6, 0.6, 0.6), (0.2, 0.6, 0.9), (-1.2, 0.0, 0.6))
    falling = ObjectSpec("sphere", "rubber", (0.6,), (0.9, 0.7, 0.1), (1.2, 0.0, 2.6), linvel=(-0.4, 0.0, 0.0))
    scene = _hand_scene(cfg, [resting, falling], distance=8.0, elevation=42.0)
    clip = generate_physics_clip(0, cfg, scene=scene)
    on_cube, on_ball = clip.surface_id == 1, clip.surface_id == 2
    assert on_cube.sum() >= 3 and on_ball.sum() >= 2
    # resting: its points stay put (contact settling is below a hundredth of a pixel)
    assert np.abs(clip.tracks[:, on_cube] - clip.tracks[:1, on_cube]).max() < 0.01
    assert clip.visibility[:, on_cube].all()
    # falling (it does not reach the floor within these frames): 3-D acceleration -g along z, none along x, y
    assert clip.object_positions[:, 1, 2].min() > 0.5 + 0.05
    dt = 1.0 / cfg.fps
    acc = np.diff(clip.points_3d[:, on_ball], 2, axis=0) / dt**2  # [T-2, n, 3] m/s^2
    np.testing.assert_allclose(acc[..., 2], -GRAVITY, rtol=1e-6)
    np.testing.assert_allclose(acc[..., :2], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.diff(clip.points_3d[:, on_ball, 0], axis=0) / dt, -0.4, rtol=1e-6)
    # its projected track is not constant-velocity: the screen acceleration is far above round-off
    screen_acc = np.linalg.norm(np.diff(clip.tracks[:, on_ball].astype(np.float64), 2, axis=0), axis=-1)
    assert screen_acc.min() > 0.1


def test_an_object_passing_the_camera_is_clamped_and_invisible():
    cfg = PhysicsSceneConfig(height=64, width=96, num_frames=8, stride=8)
    # thrown from the arena straight at (and past) a camera 6 m away at 45 degrees: depth goes through zero
    ball = ObjectSpec("sphere", "rubber", (0.4,), (1, 1, 1), (0.0, -2.0, 2.0), linvel=(0.0, -30.0, 18.0))
    clip = generate_physics_clip(0, cfg, scene=_hand_scene(cfg, [ball], distance=6.0, elevation=45.0))
    on_ball = clip.surface_id == 1
    assert on_ball.any() and (clip.depth[-1, on_ball] < 0).all()  # behind the camera at the end
    assert not clip.visibility[-1, on_ball].any()
    assert np.isfinite(clip.tracks).all() and np.abs(clip.tracks[..., 0]).max() <= 2 * 96 - 1


def test_same_seed_same_clip_and_scene_sampling_is_valid():
    a = generate_physics_clip(11, CFG)
    b = generate_physics_clip(11, CFG)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.tracks, b.tracks)
    np.testing.assert_array_equal(a.visibility, b.visibility)
    assert a.caption == b.caption and "static camera" in a.caption
    c = generate_physics_clip(12, CFG)
    assert not np.array_equal(a.tracks, c.tracks)
    assert a.frames.shape == (12, 64, 96, 3) and a.frames.dtype == np.uint8 and a.frames.std() > 5
    # tracks only (no rendering) are the same numbers
    d = generate_physics_clip(11, PhysicsSceneConfig(**{**CFG.__dict__, "render": False}))
    assert d.frames is None
    np.testing.assert_array_equal(a.tracks, d.tracks)
    np.testing.assert_array_equal(a.visibility, d.visibility)
    scene = sample_scene(5, CFG)
    assert CFG.num_objects[0] <= len(scene.objects) <= CFG.num_objects[1]
    for i, o in enumerate(scene.objects):  # no two objects start interpenetrating, none under the floor
        assert o.pos[2] >= o.bounding_radius
        for p in scene.objects[i + 1:]:
            assert np.linalg.norm(np.subtract(o.pos, p.pos)) > o.bounding_radius + p.bounding_radius


def test_textures_give_the_floor_something_to_track():
    """Seeded noise textures (for the tracker protocol); without them the floor is flat grey (MOVi-A's look)."""
    cfg = PhysicsSceneConfig(height=64, width=96, num_frames=2, stride=8, num_objects=(3, 3))
    plain = PhysicsSceneConfig(**{**cfg.__dict__, "textures": False, "floor_checker": False})
    a = generate_physics_clip(4, cfg, segmentation=True)
    b = generate_physics_clip(4, plain, segmentation=True)
    np.testing.assert_array_equal(a.tracks, b.tracks)  # the same scene: only the looks differ
    floor_a = a.frames[0][a.segmentation[0] == 0].astype(float)
    floor_b = b.frames[0][b.segmentation[0] == 0].astype(float)
    assert floor_b.std(0).max() < 3.0 < 8.0 < floor_a.std(0).min()


def test_config_and_scene_checks():
    with pytest.raises(ValueError, match="camera_elevation"):
        PhysicsSceneConfig(camera_elevation=(20.0, 60.0))  # the top of the image would see the sky
    with pytest.raises(ValueError, match="camera"):
        PhysicsSceneConfig(camera="handheld")
    with pytest.raises(ValueError, match="num_objects"):
        PhysicsSceneConfig(num_objects=(0, 3))
    with pytest.raises(ValueError, match="shapes"):
        PhysicsSceneConfig(shapes=("cone",))
    with pytest.raises(ValueError, match="height/width"):
        PhysicsSceneConfig(height=70, width=96, stride=16)
    with pytest.raises(ValueError, match="needs 1 positive"):
        ObjectSpec("sphere", "rubber", (0.5, 0.5), (1, 1, 1), (0, 0, 1))
    with pytest.raises(ValueError, match="seed"):
        sample_scene(-1, CFG)
    with pytest.raises(ValueError, match="camera path has 3 frames"):
        generate_physics_clip(0, CFG, scene=PhysicsScene([], CameraPath.static(3)))


def test_a_launch_scene_is_still_until_the_launch_frame_then_moves_the_way_its_colours_point():
    import colorsys

    from trajloom_hf.data.physics import LAUNCH

    cfg = PhysicsSceneConfig(height=64, width=96, num_frames=14, stride=8, num_objects=(4, 6), launch_frame=8)
    headings = dict(LAUNCH["palette"])
    checked = 0
    for seed in (0, 1):
        clip = generate_physics_clip(seed, cfg)
        assert "pushed the way its colour points" in clip.caption
        # resting objects settle by far less than a pixel before the push: the history shows no motion
        assert np.abs(clip.tracks[:8] - clip.tracks[0]).max() < 0.05
        for k, ob in enumerate(clip.scene.objects):
            hue = colorsys.rgb_to_hsv(*ob.rgb)[0]
            match = [h for h in headings if min(abs(hue - h), 1 - abs(hue - h)) < 1e-6]
            assert len(match) == 1 and ob.launch_heading == headings[match[0]]  # the colour names the heading
            pts = (clip.surface_id == k + 1) & clip.visibility[7] & clip.visibility[10]
            if pts.sum() < 2:
                continue
            d = (clip.tracks[10, pts] - clip.tracks[7, pts]).mean(0)
            h = np.radians(ob.launch_heading)
            want = np.array([np.cos(h), -np.sin(h)])  # the image's y axis points down: 90 deg is up the image
            assert np.linalg.norm(d) > 3.0 and d @ want > 0.8 * np.linalg.norm(d), (seed, k, d, ob.launch_heading)
            checked += 1
    assert checked >= 3
    # a thrown scene (launch_frame 0) is unchanged: its objects carry no heading
    assert all(ob.launch_heading is None for ob in sample_scene(0, CFG).objects)


def test_launch_velocity_turns_an_image_heading_into_a_floor_direction():
    from trajloom_hf.data.physics import LAUNCH, launch_velocity
    from trajloom_hf.data.physics.camera import PinholeCamera

    # a camera south of the origin looking north and down at 45 deg: image right is east (+x), up the image is north
    c, s_ = np.cos(np.radians(45)), np.sin(np.radians(45))
    rot = np.stack([[1.0, 0, 0], [0, s_, c], [0, -c, s_]], 1)  # columns: right, up, back (= -forward)
    cam = PinholeCamera(np.array([0.0, -5, 5]), rot, 50.0, 64, 96)
    up = LAUNCH["vertical_speed"]
    np.testing.assert_allclose(launch_velocity(0.0, cam, 2.0), [2.0, 0, up], atol=1e-12)
    np.testing.assert_allclose(launch_velocity(90.0, cam, 2.0), [0, 2.0, up], atol=1e-12)
    np.testing.assert_allclose(launch_velocity(180.0, cam, 1.0), [-1.0, 0, up], atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [(dict(launch_frame=12), "launch_frame"), (dict(launch_frame=-1), "launch_frame"),
                                           (dict(launch_frame=True), "launch_frame"),
                                           (dict(launch_frame=4, launch_speed=0.0), "launch_speed")])
def test_launch_config_checks(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhysicsSceneConfig(height=64, width=96, num_frames=12, stride=8, **kwargs)
