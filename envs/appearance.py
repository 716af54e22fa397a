"""How the operative field looks: procedural, seeded textures for tissue, organs and vessels,
the light, and the image-space effects of a real endoscope (sensor noise, defocus blur).

Textures are generated with numpy and OpenCV from a seed, so a texture is its number: the same
number gives the same texture on every machine, and the default scene uses texture 0. Tissue is
a pink-red base with fractal (fBm) mottling, branching capillaries, patches of yellow fat and
small bright glints where a wet surface would catch the endoscope's light (TinyRenderer has no
reflections, so the wet look is painted in). One texel of the 1024² tissue texture is 0.49 mm
of the 50 cm tissue bed, finer than a pixel of a 256² endoscope view at the home pose.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np

from surgisim.envs.files import process_folder

TISSUE_TEXTURE_SIZE = 1024
DETAIL_TEXTURE_SIZE = 256  # organs and vessels: small on screen
KINDS = ("tissue", "organ", "vessel")


def fbm(rng: np.random.Generator, size: int, octaves: int = 6, base_cells: int = 4) -> np.ndarray:
    """Fractal noise in [0, 1]: octaves of smoothly upsampled random grids, each twice as fine
    and half as strong as the one before."""
    total = np.zeros((size, size), np.float32)
    for octave in range(octaves):
        cells = base_cells * 2**octave
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        total += 0.5**octave * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def _capillaries(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """A mask (0-1) of thin, winding, branching vessels drawn as random walks."""
    mask = np.zeros((size, size), np.float32)
    for _ in range(count):
        point, heading = rng.uniform(0, size, 2), rng.uniform(0, 2 * np.pi)
        thickness, strength = int(rng.choice([1, 1, 1, 2, 3])), rng.uniform(0.3, 1.0)
        points = [point.copy()]
        for _ in range(int(rng.integers(20, 60))):
            heading += rng.normal(0.0, 0.35)
            point = point + size / 80 * np.array([np.cos(heading), np.sin(heading)])
            points.append(point.copy())
        line = np.zeros_like(mask)
        cv2.polylines(line, [np.round(points).astype(np.int32)], False, 1.0, thickness, cv2.LINE_AA)
        mask = np.maximum(mask, strength * line)
    return cv2.GaussianBlur(mask, (0, 0), 0.8)


def tissue_texture(seed: int, size: int = TISSUE_TEXTURE_SIZE) -> np.ndarray:
    """RGB (uint8) texture of peritoneal tissue number ``seed``."""
    rng = np.random.default_rng([seed, 0])
    base = np.array([0.80, 0.45, 0.42]) + rng.uniform(-0.06, 0.06, 3) * np.array([1.0, 1.5, 1.5])
    mottling = fbm(rng, size)[..., None]
    grain = fbm(rng, size, octaves=2, base_cells=size // 8)[..., None]
    image = base * (0.65 + 0.5 * mottling) * (0.92 + 0.16 * grain)
    fat = np.clip((fbm(rng, size, octaves=4, base_cells=3) - rng.uniform(0.62, 0.8)) * 6.0, 0, 1)[..., None]
    image = image * (1 - fat) + np.array([0.93, 0.82, 0.55]) * fat * (0.85 + 0.2 * mottling)
    vessels = _capillaries(rng, size, int(rng.integers(40, 90)))[..., None]
    image = image * (1 - 0.55 * vessels) + np.array([0.45, 0.05, 0.08]) * 0.55 * vessels
    glints = np.clip((fbm(rng, size, octaves=3, base_cells=96) - 0.75) * 6.0, 0, 1)[..., None]
    image = image + 0.6 * glints * (1 - image)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)


def organ_texture(seed: int, size: int = DETAIL_TEXTURE_SIZE) -> np.ndarray:
    """A mottled, lighter-in-the-middle grey detail texture; the body's colour tints it."""
    rng = np.random.default_rng([seed, 1])
    detail = 0.7 + 0.3 * fbm(rng, size, octaves=5, base_cells=6)
    glints = np.clip((fbm(rng, size, octaves=2, base_cells=32) - 0.78) * 6.0, 0, 1)
    return np.clip(np.repeat((detail + 0.5 * glints)[..., None], 3, axis=2) * 255.0, 0, 255).astype(np.uint8)


def vessel_texture(seed: int, size: int = DETAIL_TEXTURE_SIZE) -> np.ndarray:
    """Streaks along the vessel (texture v runs along its axis) with a bright band of sheen."""
    rng = np.random.default_rng([seed, 2])
    streaks = cv2.resize(rng.uniform(0.75, 1.0, (size, 8)).astype(np.float32), (size, size),
                         interpolation=cv2.INTER_CUBIC)  # fmt: skip
    around = np.linspace(0.0, 1.0, size, dtype=np.float32)[None, :]
    sheen = np.exp(-(((around - 0.3) / 0.06) ** 2))
    grey = np.clip(streaks * (0.8 + 0.2 * np.cos(2 * np.pi * around)) + 0.6 * sheen, 0, 1.2)
    return np.clip(np.repeat(grey[..., None], 3, axis=2) * 212.0, 0, 255).astype(np.uint8)


GENERATORS = {"tissue": tissue_texture, "organ": organ_texture, "vessel": vessel_texture}


@cache
def _texture_folder() -> tempfile.TemporaryDirectory:
    return process_folder("textures")


TEXTURE_GAIN_STEP = 0.05  # a colour above 1 brightens its texture by a multiple of this
MAX_TEXTURE_FILES = 64  # the PNGs a process keeps (about 1 MB each); the least recently used go first
_written: OrderedDict[Path, None] = OrderedDict()


def texture_file(kind: str, seed: int, gain: float = 1.0) -> str:
    """A PNG of texture ``seed`` of ``kind`` (PyBullet loads textures from files), brightened by
    ``gain`` (saturating at white), made in a temporary folder that goes with the process and kept
    while it is among the last ``MAX_TEXTURE_FILES`` used (made again if it was dropped, or removed
    by a forked process that shared the folder)."""
    folder = Path(_texture_folder().name)
    path = folder / (f"{kind}-{seed}.png" if gain == 1.0 else f"{kind}-{seed}-x{gain:.2f}.png")
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        texels = GENERATORS[kind](seed)
        if gain != 1.0:
            texels = np.clip(np.rint(texels * gain), 0, 255).astype(np.uint8)
        cv2.imwrite(str(path), texels[..., ::-1])
    _written[path] = None
    _written.move_to_end(path)
    while len(_written) > MAX_TEXTURE_FILES:
        _written.popitem(last=False)[0].unlink(missing_ok=True)
    return str(path)


def colour_and_gain(rgba: np.ndarray) -> tuple[np.ndarray, float]:
    """A body colour PyBullet can take and the gain its texture needs for the same product. The
    renderers multiply texels by the colour in 8 bits and wrap above white (a red tissue turns green
    and blue), so a colour above 1 is divided down and its texture brightened instead, by a gain
    rounded up to ``TEXTURE_GAIN_STEP`` (few texture files)."""
    peak = float(np.max(rgba[:3]))
    if peak <= 1.0:
        return rgba, 1.0
    gain = float(np.ceil(peak / TEXTURE_GAIN_STEP - 1e-9) * TEXTURE_GAIN_STEP)
    colour = np.array(rgba, dtype=np.float64)
    colour[:3] /= gain
    return colour, gain


LIGHT_AZIMUTH_DEG = 60.0  # the default light: from the upper right of the table, 60 degrees high
LIGHT_ELEVATION_DEG = 60.0


def light_direction(azimuth_deg: float, elevation_deg: float) -> tuple[float, float, float]:
    """The unit vector towards a light at a compass direction and a height (degrees), world frame."""
    azimuth, elevation = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    vector = (np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation))
    return tuple(float(v) for v in vector)  # type: ignore[return-value]


@dataclass
class Light:
    """The light TinyRenderer shades with: a direction (towards the light, world frame), a colour
    and the ambient, diffuse and specular coefficients."""

    direction: tuple[float, float, float] = light_direction(LIGHT_AZIMUTH_DEG, LIGHT_ELEVATION_DEG)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.55
    diffuse: float = 0.55
    specular: float = 0.25


def pinhole_matrix(size: int, fov_deg: float) -> np.ndarray:
    """The 3x3 pinhole matrix of a ``size`` x ``size`` image with a vertical field of view (degrees),
    as TinyRenderer samples it (``Camera.intrinsics`` says why the centre row is size/2 - 1)."""
    focal = size / 2 / np.tan(np.deg2rad(fov_deg) / 2)
    return np.array([[focal, 0.0, size / 2], [0.0, focal, size / 2 - 1], [0.0, 0.0, 1.0]])


@lru_cache(maxsize=16)
def _distortion_maps(size: int, fov_deg: float, k1: float) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of the distorted image, the point of the pinhole image it shows."""
    matrix = pinhole_matrix(size, fov_deg)
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float32)
    pixels = np.stack([columns.ravel(), rows.ravel()], axis=1)[:, None, :]
    ideal = cv2.undistortPoints(pixels, matrix, np.array([k1, 0.0, 0.0, 0.0]), P=matrix).reshape(size, size, 2)
    return ideal[..., 0].astype(np.float32), ideal[..., 1].astype(np.float32)


def distort(images: dict[str, np.ndarray], fov_deg: float, k1: float) -> dict[str, np.ndarray]:
    """The images as a lens with radial distortion ``k1`` (OpenCV's model; negative: barrel, as an
    endoscope's wide-angle optics) would show them; colour is interpolated, depth and labels not.
    What the lens shows from beyond the rendered field is black (background, far), as the dark
    corners of an endoscope's image circle."""
    if k1 == 0.0:
        return images
    size = next(iter(images.values())).shape[0]
    map_x, map_y = _distortion_maps(size, round(fov_deg, 6), round(k1, 6))
    distorted = {}
    for key, image in images.items():
        method = cv2.INTER_LINEAR if key == "rgb" else cv2.INTER_NEAREST
        outside = 255 if key == "depth" else 0
        out = cv2.remap(image, map_x, map_y, method, borderMode=cv2.BORDER_CONSTANT, borderValue=outside)
        distorted[key] = out.reshape(image.shape)
    return distorted


BLUR_REFERENCE_SIZE = 84  # a blur sigma is given in pixels of an 84x84 image; it scales with the image


def through_the_endoscope(images: dict[str, np.ndarray], fov_deg: float, k1: float, blur_sigma_px: float,
                          noise_std: float, rng: np.random.Generator | None) -> dict[str, np.ndarray]:  # fmt: skip
    """Rendered images as the endoscope gives them: its lens distortion (``distort``), then
    defocus blur (``blur_sigma_px`` in pixels of an 84x84 image) and sensor noise on the colour."""
    images = distort(images, fov_deg, k1)
    size = next(iter(images.values())).shape[0]
    images["rgb"] = degrade(images["rgb"], blur_sigma_px * size / BLUR_REFERENCE_SIZE, noise_std, rng)
    return images


def degrade(rgb: np.ndarray, blur_sigma_px: float, noise_std: float, rng: np.random.Generator | None) -> np.ndarray:
    """An endoscope image as a camera would give it: defocus blur (Gaussian, sigma in pixels),
    then sensor noise (Gaussian, standard deviation in grey levels, drawn from ``rng``)."""
    image = rgb
    if blur_sigma_px > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma_px)
    if noise_std > 0 and rng is not None:
        noisy = image.astype(np.float32) + rng.normal(0.0, noise_std, image.shape).astype(np.float32)
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return image
