"""How the operative field looks and acts: textures, solid anatomy, visible damage, labels."""

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from surgisim.envs import appearance
from surgisim.envs.appearance import Light, degrade, distort, tissue_texture
from surgisim.envs.camera import SegLabel, depth_to_metres
from surgisim.envs.scene import Look, Scene
from surgisim.envs.tasks import REGISTRY
from surgisim.envs.tasks.navigate_anatomy import ANATOMY_STIFFNESS, BLOCKER, CONTACT_TOLERANCE
from surgisim.envs.transforms import make_pose


def test_tissue_textures_are_seeded_reddish_and_varied():
    first, again, other = tissue_texture(0, size=256), tissue_texture(0, size=256), tissue_texture(1, size=256)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    mean = first.reshape(-1, 3).mean(axis=0)
    assert mean[0] > mean[1] + 40 and mean[0] > mean[2] + 40  # red dominates, as in tissue
    assert first.reshape(-1, 3).std(axis=0).min() > 8  # mottled and veined, not a flat colour


def test_texture_files_are_kept_with_a_bound(monkeypatch):
    monkeypatch.setattr(appearance, "MAX_TEXTURE_FILES", 3)
    paths = [Path(appearance.texture_file("vessel", seed)) for seed in range(6)]  # small ones: quick to make
    assert [path.exists() for path in paths] == [False, False, False, True, True, True]
    assert Path(appearance.texture_file("vessel", 0)).exists()  # made again when it is wanted again


def test_a_killed_process_leaves_no_texture_folder_behind_for_long(tmp_path):
    """A process killed before its exit (a Ray worker, a timed-out test) cannot remove its folder of
    textures; the next process that makes textures removes it, and leaves those of live ones."""
    make_textures = (
        "import os, signal, sys; from surgisim.envs import appearance; appearance.texture_file('vessel', 0); "
        "print(os.getpid(), flush=True); os.kill(os.getpid(), signal.SIGKILL if sys.argv[1] == 'kill' else 0)"
    )
    environment = {**os.environ, "TMPDIR": str(tmp_path)}

    def run(how: str) -> int:
        done = subprocess.run([sys.executable, "-c", make_textures, how], env=environment, capture_output=True)
        return int(done.stdout.split()[-1])  # the last line: an import may print first

    killed = run("kill")
    assert [entry.name.split("-")[2] for entry in tmp_path.iterdir()] == [str(killed)]  # left behind
    live = tmp_path / f"surgisim-textures-{os.getpid()}-live"
    live.mkdir()
    exited = run("exit")
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [live.name]  # its own went at its exit
    assert exited != killed


def test_the_endoscope_image_has_texture_and_follows_the_light():
    env = gym.make("surgisim/NeedleReach-v0", obs_mode="rgb", image_size=84).unwrapped
    env.reset(seed=0)
    rgb = env.scene.render(84)["rgb"].astype(float)
    assert rgb.std(axis=(0, 1)).min() > 5
    env.scene.look.light = Light(ambient=0.2, diffuse=0.2)
    assert env.scene.render(84)["rgb"].mean() < rgb.mean() - 20
    env.close()


def test_degrade_blurs_and_adds_seeded_noise():
    image = np.zeros((32, 32, 3), np.uint8)
    image[16, 16] = 255
    blurred = degrade(image, 1.0, 0.0, None)
    assert blurred[16, 16, 0] < 255 and blurred[16, 17, 0] > 0
    noisy = [degrade(image, 0.0, 5.0, np.random.default_rng(1)) for _ in range(2)]
    assert np.array_equal(*noisy) and 2 < np.std(noisy[0].astype(float) - image) < 8


def test_an_instrument_driven_into_an_organ_stops_at_its_surface():
    env = gym.make("surgisim/NavigateAnatomy-v0", action_frame="world").unwrapped
    env.reset(seed=3)
    organ, centre = env.task.anatomy[BLOCKER], env.task.anatomy_poses[BLOCKER][:3]
    tips, infos = [], []
    for _ in range(25):
        info = env.step(env.action_toward(centre))[-1]
        tips.append(env.scene.psm.tip_pose()[:3, 3])
        infos.append(info)
        depth = max((-d for d, _, _ in env.scene.sim.closest_points("psm1", organ, 0.0)), default=0.0)
        assert depth <= CONTACT_TOLERANCE + 1e-4  # never deeper than the tolerance
    touching = [i for i, info in enumerate(infos) if info["cost"] > 0]
    assert touching, "the instrument never reached the organ"
    first = touching[0]
    assert np.allclose(tips[first], tips[-1], atol=1e-6)  # stopped there, however hard it pushes
    assert np.linalg.norm(tips[-1] - centre) > 0.005  # short of the organ's centre
    pushed = infos[-1]
    assert pushed["contact_depth_mm"] > 2.0  # the step asked for millimetres into the organ
    assert pushed["contact_force_n"] == pytest.approx(ANATOMY_STIFFNESS * pushed["contact_depth_mm"] / 1000)
    assert not pushed["is_success"]
    env.close()


def test_damage_marks_appear_where_the_needle_dragged_the_tissue():
    env = gym.make("surgisim/NeedleInsert-v0", action_frame="world").unwrapped
    expert = REGISTRY["NeedleInsert"].expert(env)
    observation, _ = env.reset(seed=0)
    while env.task.tissue.entry is None:
        observation = env.step(expert(observation))[0]
    for _ in range(3):  # deeper in
        observation = env.step(expert(observation))[0]
    assert len(env.task.damage_marks.points) == 1 and env.task.tissue.damage_mm == 0.0  # the puncture
    holes = [env.task.tissue.entry.copy()]
    for _ in range(4):  # roll the needle out of its arc while moving sideways: it tears the tissue
        env.step(np.array([0.0, 1.0, 0.0, 1.0, -1.0]))
        holes += [hole.copy() for hole in (env.task.tissue.entry, env.task.tissue.exit) if hole is not None]
    marks = env.task.damage_marks.points
    assert env.task.tissue.damage_mm > 1.5 and len(marks) >= 2
    for mark in marks:  # each on the tissue, where a hole was
        assert 0.0 < mark[2] < 0.001 and min(np.linalg.norm(mark[:2] - hole[:2]) for hole in holes) < 1e-6
    for mark in marks:  # and seen in segmentation, labelled as damage, from 2 cm above
        pose = make_pose(np.diag([1.0, -1.0, -1.0]), mark + np.array([0.0, 0.0, 0.02]))
        seg = env.scene.camera.render(pose, 128, depth=False, seg=True)["seg"][..., 0]
        assert np.count_nonzero(seg[54:74, 54:74] == SegLabel.DAMAGE) > 20
    env.close()


def test_each_instrument_has_its_own_segmentation_label():
    env = gym.make("surgisim/NeedleHandover-v0", obs_mode="all", image_size=128).unwrapped
    observation, _ = env.reset(seed=1)
    seg = observation["seg"][..., 0]
    for arm, label in (("psm1", SegLabel.INSTRUMENT), ("psm2", SegLabel.INSTRUMENT_PSM2)):
        pixel, _ = env.scene.camera.project(env.scene.camera_pose(), env.scene.arms[arm].tip_pose()[:3, 3], 128)
        column, row = np.round(pixel).astype(int)
        window = seg[max(row - 4, 0) : row + 5, max(column - 4, 0) : column + 5]
        assert np.any(window == label) and np.count_nonzero(seg == label) > 30, arm
    env.close()


@pytest.mark.parametrize("env_id", ["surgisim/NeedleInsert-v0", "surgisim/SutureThrow-v0"])
def test_tissue_marks_are_visible_at_84_pixels(env_id):
    env = gym.make(env_id, obs_mode="all", image_size=84).unwrapped
    marks = ("entry_mark", "exit_mark")
    for seed in range(5):
        env.reset(seed=seed)
        for name in set(env.scene.sim.bodies) - {"tissue", *marks}:  # nothing in front of the marks
            env.scene.sim.set_base_pose(name, np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 0.0, 1.0]))
        observation = env.observe()
        for name in marks:
            position, _ = env.scene.sim.base_pose(name)
            pixel, _ = env.scene.camera.project(env.scene.camera_pose(), position, 84)
            column, row = np.round(pixel).astype(int)
            window = observation["seg"][max(row - 3, 0) : row + 4, max(column - 3, 0) : column + 4, 0]
            assert np.count_nonzero(window == SegLabel.TARGET) >= 4, (seed, name)
    env.close()


def test_the_lesion_stands_out_in_depth():
    env = gym.make("surgisim/EndoscopeTrack-v0", obs_mode="all", image_size=84).unwrapped
    observation, _ = env.reset(seed=0)
    lesion = observation["seg"][..., 0] == SegLabel.TARGET
    env.scene.sim.set_base_pose("lesion", np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 0.0, 1.0]))
    tissue = depth_to_metres(env.observe()["depth"][..., 0])  # the same pixels without the lesion
    raised = tissue[lesion] - depth_to_metres(observation["depth"][..., 0])[lesion]
    assert lesion.sum() > 10 and raised.max() > 0.003 and raised.mean() > 0.0015
    env.close()


def test_lens_distortion_bows_straight_lines_and_keeps_the_centre():
    size = 65
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[:, 12] = 255  # a vertical line left of the centre
    seg = np.ones((size, size, 1), np.uint8)
    seg[30:35, 30:35] = SegLabel.TARGET
    bent = distort({"rgb": rgb, "seg": seg}, 70.0, -0.15)
    columns = [int(np.argmax(bent["rgb"][row, :, 0])) for row in (8, 32, 56)]
    assert columns[0] > columns[1] < columns[2]  # barrel: the line's ends are pulled towards the centre
    assert np.array_equal(bent["seg"][30:35, 30:35], seg[30:35, 30:35])  # the centre stays
    assert set(np.unique(bent["seg"])) <= {0, 1, SegLabel.TARGET}  # labels are not blended
    assert bent["rgb"][0, 0].max() == 0  # the corners show nothing, as an endoscope's image circle


def test_a_tint_above_one_brightens_the_tissue_without_wrapping_its_colour():
    """The renderers multiply texels by the body colour in 8 bits and wrap above white: a gain of
    1.3 once turned the pink tissue green and blue. It brightens every texel now, hue kept."""
    scene = Scene()
    try:
        views = {}
        for gain in (1.0, 1.3, 2.0):
            scene.set_look(Look(tint=np.full(3, gain)))
            image = scene.render(96, seg=True)
            tissue = image["seg"][..., 0] == SegLabel.TISSUE
            views[gain] = image["rgb"][tissue].astype(int)
        plain, bright, brightest = views[1.0], views[1.3], views[2.0]
        assert np.all(bright >= plain - 1) and np.all(brightest >= bright - 1)
        assert bright.mean() > 1.2 * plain.mean()
        red_most = plain[:, 0] >= plain[:, 1:].max(axis=1)  # the tissue is pink: red leads
        assert red_most.mean() > 0.9
        for view in (bright, brightest):
            assert np.all(view[red_most, 0] >= view[red_most, 1:].max(axis=1))
    finally:
        scene.close()
