"""Pinhole street camera and polygon helpers for the synthetic scene generator.

World coordinates are metres: X to the right, Y up from the ground, Z forward (depth). The
camera sits at height ``cam_height`` looking along Z, so every ground line of constant X
converges to the vanishing point on the horizon: this is what gives the scenes their
perspective.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Camera:
    """Projects world points (metres) to image pixels."""

    height: int
    width: int
    horizon_y: float
    vanish_x: float
    focal: float
    cam_height: float = 1.5

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points with Z > 0 -> (N, 2) pixel coordinates (x, y)."""
        pts = np.asarray(points, dtype=np.float64)
        z = pts[:, 2]
        x = self.vanish_x + self.focal * pts[:, 0] / z
        y = self.horizon_y + self.focal * (self.cam_height - pts[:, 1]) / z
        return np.stack([x, y], axis=1)

    def scale(self, depth: float) -> float:
        """Pixels per metre for something facing the camera at ``depth``."""
        return self.focal / depth

    def billboard(self, shape_xy: np.ndarray, x: float, depth: float,
                  base_y: float = 0.0) -> np.ndarray:
        """Place a flat, camera-facing outline (metres, Y up) at lateral ``x`` and ``depth``."""
        shape = np.asarray(shape_xy, dtype=np.float64)
        world = np.empty((len(shape), 3))
        world[:, 0] = x + shape[:, 0]
        world[:, 1] = base_y + shape[:, 1]
        world[:, 2] = depth
        return self.project(world)

    def ground_quad(self, x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
        """Rectangle on the ground plane (X in [x0, x1], Z in [z0, z1]) in pixels."""
        return self.project(np.array([[x0, 0, z0], [x1, 0, z0], [x1, 0, z1], [x0, 0, z1]]))

    def side_quad(self, x: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
        """Rectangle on the vertical plane X = x (a facade, fence or wall) in pixels."""
        return self.project(np.array([[x, y0, z0], [x, y1, z0], [x, y1, z1], [x, y0, z1]]))


def circle(cx: float, cy: float, radius: float, n: int = 16) -> np.ndarray:
    """A regular n-gon approximating a circle (same units as the inputs)."""
    ang = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + radius * np.cos(ang), cy + radius * np.sin(ang)], axis=1)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def clip_to_image(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon to the pixel rectangle [0, W-1] x [0, H-1].

    Cityscapes annotations keep their vertices inside the image; clipping keeps ours there
    too (and keeps the JSON small) without changing which pixels get filled.
    """
    bounds = ((0, 0.0, False), (0, width - 1.0, True), (1, 0.0, False), (1, height - 1.0, True))
    out = np.asarray(polygon, dtype=np.float64)
    for axis, bound, keep_below in bounds:
        if len(out) == 0:
            break
        inside = out[:, axis] <= bound if keep_below else out[:, axis] >= bound
        clipped = []
        for i in range(len(out)):
            prev, cur = out[i - 1], out[i]
            if inside[i] != inside[i - 1]:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                clipped.append(prev + t * (cur - prev))
            if inside[i]:
                clipped.append(cur)
        out = np.array(clipped).reshape(-1, 2)
    return out


def to_pixel_polygon(polygon: np.ndarray, width: int, height: int) -> list[list[int]] | None:
    """Clip and round a polygon to integer pixel vertices, as stored in Cityscapes JSON.

    Returns None when nothing with a positive area is left inside the image.
    """
    clipped = clip_to_image(polygon, width, height)
    if len(clipped) < 3:
        return None
    pts = np.rint(clipped).astype(np.int64)
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
    pts = pts[keep]
    if len(pts) < 3:
        return None
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if area < 1.0:
        return None
    return pts.tolist()
