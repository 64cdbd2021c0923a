"""Procedural street scene: a list of labelled polygons in painter's order.

A scene is built in world coordinates (see :mod:`.geometry`) and projected through a random
pinhole camera: a straight street running to a vanishing point, road with lane marks, sidewalks,
optional grass strips, facades with windows or hedges on both sides, a skyline at the far end,
and camera-facing objects (poles, street lamps, signs, traffic lights, trees, cars, people,
cyclists) drawn far to near. Every labelled object is a single polygon (as in Cityscapes'
``*_gtFine_polygons.json``); ``details`` are image-only decorations (windows, lane marks,
tyres...) that lie inside their object, so later objects hide them exactly like the object.

Colours are class-consistent (each class draws from its own palette) so that a tiny network
can learn the scenes quickly, while layout, camera and colours vary per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import Camera, Color, circle, rect

SKY_CLEAR = ((70, 120, 190), (185, 210, 235))
SKY_OVERCAST = ((165, 172, 185), (220, 222, 228))
BUILDING_COLORS = ((185, 165, 135), (150, 85, 65), (125, 125, 130), (205, 195, 175),
                   (115, 100, 90), (170, 172, 160), (190, 140, 110))
GLASS_COLORS = ((45, 60, 80), (70, 85, 105), (35, 45, 55), (95, 110, 125))
CAR_COLORS = ((228, 228, 228), (170, 172, 176), (32, 32, 36), (170, 28, 32), (32, 62, 150),
              (78, 80, 84), (28, 38, 82), (42, 92, 62), (192, 172, 132))
CLOTHES_COLORS = ((200, 40, 40), (40, 60, 140), (230, 230, 225), (35, 35, 40), (90, 110, 60),
                  (220, 170, 40), (120, 60, 120), (150, 150, 155), (60, 130, 170))
PANTS_COLORS = ((40, 50, 90), (30, 30, 32), (90, 80, 70), (70, 72, 78))
SKIN_COLORS = ((235, 195, 160), (200, 150, 110), (150, 100, 70), (95, 65, 45))
LAMP_COLORS = ((255, 45, 30), (255, 175, 0), (40, 235, 120))


@dataclass
class Shape:
    """Image-only detail: a filled polygon (pixels) drawn right after its object."""

    polygon: np.ndarray
    color: Color


@dataclass
class SceneObject:
    """One annotated polygon (pixels, unclipped) with its Cityscapes label name."""

    label: str
    polygon: np.ndarray
    color: Color
    details: list[Shape] = field(default_factory=list)


@dataclass(frozen=True)
class Street:
    """Lateral layout in metres (left values negative) and the depth where the street ends."""

    road_left: float
    road_right: float
    walk_left: float
    walk_right: float
    facade_left: float
    facade_right: float
    z_far: float

    @property
    def lanes(self) -> tuple[int, float]:
        """(number of lanes, lane width): lanes of at least 3.2 m."""
        width = self.road_right - self.road_left
        n = max(1, int(width / 3.2))
        return n, width / n


def _person_outline(height: float, stride: float) -> np.ndarray:
    """Front/back silhouette (metres, feet at y=0) with legs ``stride`` apart."""
    s = stride
    left = [(-0.015, 0.45), (-0.03 - s, 0.0), (-0.10 - s, 0.0), (-0.10, 0.50), (-0.115, 0.44),
            (-0.165, 0.45), (-0.15, 0.80), (-0.11, 0.835), (-0.035, 0.85)]
    ang = np.deg2rad(np.linspace(240.0, 90.0, 6))
    left += [(0.065 * np.cos(a), 0.925 + 0.065 * np.sin(a)) for a in ang]
    left_arr = np.array(left)
    right = left_arr[-2::-1] * np.array([-1.0, 1.0])
    return np.concatenate([left_arr, right]) * height


def _car_outline(width: float, height: float) -> np.ndarray:
    """Rear view of a car with the tyres touching the ground (metres)."""
    right_side = np.array([(0.5, 0.08), (0.5, 0.55), (0.47, 0.62), (0.36, 0.97), (0.30, 1.0)])
    tyres = np.array([(0.42, 0.0), (0.28, 0.0), (0.25, 0.08), (-0.25, 0.08), (-0.28, 0.0),
                      (-0.42, 0.0)])
    outline = np.concatenate([right_side * [-1, 1], right_side[::-1], tyres])
    return outline * np.array([width, height])


class StreetSceneBuilder:
    """Draws one random street scene; all randomness comes from ``rng``."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng = rng
        self.cam = Camera(height=height, width=width,
                          horizon_y=height * rng.uniform(0.36, 0.5),
                          vanish_x=width * rng.uniform(0.4, 0.6),
                          focal=width * rng.uniform(0.9, 1.2))
        road_l, road_r = -rng.uniform(3.5, 8.0), rng.uniform(3.5, 8.0)
        walk_l, walk_r = road_l - rng.uniform(2.0, 4.5), road_r + rng.uniform(2.0, 4.5)
        self.street = Street(
            road_left=road_l, road_right=road_r, walk_left=walk_l, walk_right=walk_r,
            facade_left=walk_l - (rng.uniform(1.0, 4.0) if rng.random() < 0.4 else 0.0),
            facade_right=walk_r + (rng.uniform(1.0, 4.0) if rng.random() < 0.4 else 0.0),
            z_far=rng.uniform(80.0, 200.0))
        self.road_obj: SceneObject | None = None

    # ------------------------------------------------------------------ helpers
    def jitter(self, color: Color, amount: int = 12) -> Color:
        c = np.asarray(color) + self.rng.integers(-amount, amount + 1, size=3)
        return tuple(int(v) for v in np.clip(c, 0, 255))

    def pick(self, colors: tuple[Color, ...], amount: int = 12) -> Color:
        return self.jitter(colors[int(self.rng.integers(len(colors)))], amount)

    # ------------------------------------------------------------------ scene
    def build(self) -> list[SceneObject]:
        """All objects in painter's order (first drawn first)."""
        objects = [self.sky()]
        objects += self.skyline()
        for side in (-1, 1):
            objects += self.facades(side)
        objects += self.ground()
        objects += self.fences_and_walls()
        objects += self.movables()
        if self.rng.random() < 0.6:
            objects.append(self.ego_vehicle())
        return objects

    def sky(self) -> SceneObject:
        w, h = self.cam.width, self.cam.height
        clear = self.rng.random() < 0.7
        top, bottom = SKY_CLEAR if clear else SKY_OVERCAST
        top, bottom = self.jitter(top, 10), self.jitter(bottom, 8)
        obj = SceneObject("sky", rect(0, 0, w - 1, h - 1), top)
        n = 12
        band_h = self.cam.horizon_y / n
        for i in range(1, n + 1):
            c = tuple(int(a + (b - a) * i / n) for a, b in zip(top, bottom))
            obj.details.append(Shape(rect(0, i * band_h, w - 1, (i + 1) * band_h), c))
        obj.details.append(Shape(rect(0, (n + 1) * band_h, w - 1, h - 1), bottom))
        for _ in range(int(self.rng.integers(0, 4)) if clear else 0):
            cx, cy = self.rng.uniform(0, w), self.rng.uniform(0, 0.6 * self.cam.horizon_y)
            blob = circle(cx, cy, self.rng.uniform(0.02, 0.06) * w, 12)
            blob[:, 1] = cy + (blob[:, 1] - cy) * 0.4  # flat clouds
            obj.details.append(Shape(blob, self.jitter((235, 238, 242), 6)))
        return obj

    def skyline(self) -> list[SceneObject]:
        """Buildings and trees closing the street at the far end."""
        st, rng = self.street, self.rng
        z = st.z_far + 1.0
        out = []
        x = st.facade_left - 20.0
        while x < st.facade_right + 20.0:
            w = rng.uniform(5.0, 15.0)
            if rng.random() < 0.75:
                hgt = rng.uniform(6.0, 35.0)
                poly = self.cam.billboard(rect(0, 0, w, hgt), x, z)
                out.append(SceneObject("building", poly, self.pick(BUILDING_COLORS, 15)))
            else:
                crown = circle(w / 2, rng.uniform(4.0, 8.0), w / 2 + 1.0, 14)
                crown = np.concatenate([[[0.0, 0.0], [w, 0.0]], crown[crown[:, 1] > 1.0]])
                crown = crown[np.argsort(np.arctan2(crown[:, 1] - 3.0, crown[:, 0] - w / 2))]
                out.append(SceneObject("vegetation", self.cam.billboard(crown, x, z),
                                       self.jitter((60, 105, 45), 15)))
            x += w
        return out

    def facades(self, side: int) -> list[SceneObject]:
        st, rng = self.street, self.rng
        x = st.facade_left if side < 0 else st.facade_right
        out = []
        z = 1.0
        while z < st.z_far:
            z1 = min(z + rng.uniform(8.0, 30.0), st.z_far)
            if rng.random() < 0.75:
                out.append(self.building(x, z, z1))
            else:
                out.append(self.hedge(x, z, z1))
            z = z1
        return out

    def building(self, x: float, z0: float, z1: float) -> SceneObject:
        rng, cam = self.rng, self.cam
        hgt = rng.uniform(7.0, 28.0)
        obj = SceneObject("building", cam.side_quad(x, 0.0, hgt, z0, z1),
                          self.pick(BUILDING_COLORS, 15))
        glass = self.pick(GLASS_COLORS, 10)
        frame = self.jitter((225, 225, 220), 10)
        floor_h, win_h = rng.uniform(2.8, 3.6), rng.uniform(1.2, 1.8)
        spacing = rng.uniform(2.5, 4.0)
        win_w = spacing * rng.uniform(0.35, 0.6)
        y = floor_h * 0.5 + 0.6
        while y + win_h < hgt - 0.5:
            for zw in np.arange(z0 + 0.8, z1 - 0.8 - win_w, spacing):
                px = cam.scale(zw) * win_h  # window height in pixels
                if px >= 5:
                    obj.details.append(Shape(cam.side_quad(
                        x, y - 0.12, y + win_h + 0.12, zw - 0.1, zw + win_w + 0.1), frame))
                if px >= 1.5:
                    obj.details.append(Shape(cam.side_quad(x, y, y + win_h, zw, zw + win_w),
                                             self.jitter(glass, 14)))
            y += floor_h
        if rng.random() < 0.5:  # entrance
            zd = rng.uniform(z0 + 1.0, max(z0 + 1.5, z1 - 2.5))
            obj.details.append(Shape(cam.side_quad(x, 0.0, 2.3, zd, zd + 1.4),
                                     self.jitter((60, 45, 35), 10)))
        return obj

    def hedge(self, x: float, z0: float, z1: float) -> SceneObject:
        """Trees / hedge along the facade line: vegetation with a bumpy top."""
        zs = np.linspace(z0, z1, int(self.rng.integers(6, 14)))
        tops = self.rng.uniform(3.0, 10.0) + self.rng.uniform(-1.5, 1.5, size=len(zs))
        pts = [[x, 0.0, z0], [x, 0.0, z1]] + [[x, t, zz] for zz, t in zip(zs[::-1], tops[::-1])]
        return SceneObject("vegetation", self.cam.project(np.array(pts)),
                           self.jitter((55, 100, 40), 15))

    def ground(self) -> list[SceneObject]:
        st, cam, rng = self.street, self.cam, self.rng
        z0, z1 = 1.0, st.z_far
        out = []
        grass = self.jitter((135, 155, 85), 15)
        for a, b in ((st.facade_left, st.walk_left), (st.walk_right, st.facade_right)):
            if abs(a - b) > 1e-6:
                out.append(SceneObject("terrain", cam.ground_quad(a, b, z0, z1), grass))
        walk = self.jitter((165, 158, 150), 15) if rng.random() < 0.7 else self.jitter(
            (160, 120, 110), 10)
        curb = self.jitter((195, 195, 190), 8)
        seam = tuple(int(c * 0.85) for c in walk)
        step = rng.uniform(1.5, 3.0)
        for outer, edge, inward in ((st.walk_left, st.road_left, -1), (st.walk_right,
                                                                       st.road_right, 1)):
            a, b = sorted((outer, edge))
            obj = SceneObject("sidewalk", cam.ground_quad(a, b, z0, z1), walk)
            obj.details.append(Shape(cam.ground_quad(edge, edge + inward * 0.2, z0, z1), curb))
            for zs in np.arange(2.0, 45.0, step):
                obj.details.append(Shape(cam.ground_quad(a, b, zs, zs + 0.06), seam))
            out.append(obj)
        out.append(self.road())
        return out

    def road(self) -> SceneObject:
        st, cam, rng = self.street, self.cam, self.rng
        gray = rng.uniform(70, 110)
        asphalt = self.jitter((int(gray), int(gray), int(gray + 8)), 4)
        obj = SceneObject("road", cam.ground_quad(st.road_left, st.road_right, 1.0, st.z_far),
                          asphalt)
        for _ in range(int(rng.integers(0, 5))):  # repaired patches
            x0 = rng.uniform(st.road_left, st.road_right - 1.0)
            z0 = rng.uniform(3.0, 40.0)
            shade = int(rng.integers(-12, 13))  # darker or lighter asphalt, same hue
            obj.details.append(Shape(
                cam.ground_quad(x0, x0 + rng.uniform(0.5, 3.0), z0, z0 + rng.uniform(1.0, 8.0)),
                tuple(int(np.clip(c + shade, 0, 255)) for c in asphalt)))
        paint = self.jitter((225, 225, 220), 8)
        for edge, inward in ((st.road_left, 1), (st.road_right, -1)):
            e = edge + inward * 0.3
            obj.details.append(Shape(cam.ground_quad(e, e + inward * 0.15, 1.0, st.z_far), paint))
        n_lanes, lane_w = st.lanes
        dash, gap = rng.uniform(2.5, 4.0), rng.uniform(4.0, 8.0)
        for k in range(1, n_lanes):
            xl = st.road_left + k * lane_w
            for zd in np.arange(rng.uniform(1.0, dash + gap), st.z_far, dash + gap):
                obj.details.append(Shape(cam.ground_quad(xl - 0.07, xl + 0.07, zd, zd + dash),
                                         paint))
        if rng.random() < 0.3:  # zebra crossing
            zc = rng.uniform(8.0, 30.0)
            for xs in np.arange(st.road_left + 0.5, st.road_right - 0.5, 1.0):
                obj.details.append(Shape(cam.ground_quad(xs, xs + 0.5, zc, zc + 3.0), paint))
        self.road_obj = obj
        return obj

    def fences_and_walls(self) -> list[SceneObject]:
        st, cam, rng = self.street, self.cam, self.rng
        out = []
        for x in (st.walk_left, st.walk_right):
            if rng.random() >= 0.35:
                continue
            z0 = rng.uniform(3.0, 30.0)
            z1 = min(z0 + rng.uniform(10.0, 50.0), st.z_far)
            if rng.random() < 0.5:
                hgt = rng.uniform(1.0, 1.6)
                obj = SceneObject("fence", cam.side_quad(x, 0.0, hgt, z0, z1),
                                  self.jitter((135, 100, 65), 15))
                post = tuple(int(c * 0.6) for c in obj.color)
                for zp in np.arange(z0, z1, 2.0):
                    obj.details.append(Shape(cam.side_quad(x, 0.0, hgt, zp, zp + 0.1), post))
                obj.details.append(Shape(cam.side_quad(x, hgt * 0.45, hgt * 0.55, z0, z1), post))
            else:
                hgt = rng.uniform(0.6, 2.0)
                obj = SceneObject("wall", cam.side_quad(x, 0.0, hgt, z0, z1),
                                  self.jitter((170, 165, 150), 12))
                cap = self.jitter((205, 200, 190), 6)
                obj.details.append(Shape(cam.side_quad(x, hgt - 0.12, hgt, z0, z1), cap))
            out.append(obj)
        return out

    # ------------------------------------------------------------------ movables
    def movables(self) -> list[SceneObject]:
        """Camera-facing objects, sorted far to near so nearer ones occlude farther ones."""
        st, rng = self.street, self.rng
        z_max = min(st.z_far - 5.0, 100.0)
        items: list[tuple[float, list[SceneObject]]] = []
        for side, edge, outer in ((-1, st.road_left, st.walk_left),
                                  (1, st.road_right, st.walk_right)):
            x_pole = edge + side * rng.uniform(0.3, 0.6)
            for _ in range(int(rng.integers(0, 4))):
                z = rng.uniform(6.0, z_max)
                kind = rng.random()
                if kind < 0.4:
                    items.append((z, self.street_lamp(x_pole, z, side)))
                elif kind < 0.75:
                    items.append((z, self.sign(x_pole, z)))
                else:
                    items.append((z, self.traffic_light(x_pole, z)))
            if abs(outer - edge) > 2.5:
                for _ in range(int(rng.integers(0, 4))):
                    z = rng.uniform(5.0, z_max)
                    items.append((z, self.tree(outer - side * 0.8, z)))
            for z, x in self.spread(int(rng.integers(0, 5)), edge + side * 0.6,
                                    outer - side * 0.4, 4.0, 60.0, 0.7, 1.2):
                items.append((z, [self.person(x, z)]))
        n_lanes, lane_w = st.lanes
        cars = self.spread(int(rng.integers(1, 3 * n_lanes + 3)), st.road_left + lane_w / 2,
                           st.road_right - lane_w / 2, 6.0, z_max, 2.2, 7.0, lanes=n_lanes)
        for z, x in cars:
            items.append((z, [self.car(x, z)]))
        if rng.random() < 0.3:
            z = rng.uniform(8.0, 40.0)
            x = st.road_right - rng.uniform(0.6, 1.2)
            if all(abs(z - zc) > 4.0 or abs(x - xc) > 2.0 for zc, xc in cars):
                items.append((z, self.cyclist(x, z)))
        items.sort(key=lambda item: -item[0])
        return [obj for _, group in items for obj in group]

    def spread(self, count: int, x0: float, x1: float, z0: float, z1: float, min_dx: float,
               min_dz: float, lanes: int = 0) -> list[tuple[float, float]]:
        """Up to ``count`` non-overlapping (z, x) positions; on ``lanes`` lane centres if set."""
        lo, hi = min(x0, x1), max(x0, x1)
        placed: list[tuple[float, float]] = []
        for _ in range(count * 4):
            if len(placed) == count or z1 <= z0:
                break
            if lanes:
                k = int(self.rng.integers(lanes))
                x = lo + (hi - lo) * (k / max(lanes - 1, 1)) + self.rng.uniform(-0.3, 0.3)
            else:
                x = self.rng.uniform(lo, hi)
            z = self.rng.uniform(z0, z1)
            if all(abs(z - pz) > min_dz or abs(x - px) > min_dx for pz, px in placed):
                placed.append((z, x))
        return placed

    def pole(self, x: float, z: float, hgt: float, width: float) -> SceneObject:
        return SceneObject("pole", self.cam.billboard(rect(-width / 2, 0, width / 2, hgt), x, z),
                           self.jitter((125, 128, 132), 20))

    def street_lamp(self, x: float, z: float, side: int) -> list[SceneObject]:
        """Pole with an arm reaching over the road (one polygon, label pole)."""
        rng = self.rng
        hgt, w, arm = rng.uniform(5.0, 9.0), rng.uniform(0.15, 0.25), rng.uniform(1.0, 2.0)
        toward_road = np.array([-side, 1.0])
        outline = np.array([[-w / 2, 0], [w / 2, 0], [w / 2, hgt - 0.15], [arm, hgt - 0.15],
                            [arm, hgt], [-w / 2, hgt]]) * toward_road
        obj = SceneObject("pole", self.cam.billboard(outline, x, z),
                          self.jitter((120, 124, 128), 20))
        head = rect(arm - 0.5, hgt - 0.15, arm, hgt - 0.08) * toward_road
        obj.details.append(Shape(self.cam.billboard(head, x, z), self.jitter((230, 230, 200), 8)))
        return [obj]

    def sign(self, x: float, z: float) -> list[SceneObject]:
        rng = self.rng
        hgt = rng.uniform(2.2, 3.2)
        r = rng.uniform(0.3, 0.45)
        pole = self.pole(x, z, hgt, rng.uniform(0.06, 0.1))
        cy = hgt - r
        kind = int(rng.integers(5))
        white = self.jitter((240, 240, 235), 6)
        red, blue = self.jitter((200, 30, 30), 10), self.jitter((30, 70, 170), 10)
        if kind == 0:  # prohibition: red ring
            face, color = circle(0, cy, r), red
            inner = [(circle(0, cy, r * 0.72), white)]
        elif kind == 1:  # mandatory: blue disc with an arrow
            face, color = circle(0, cy, r), blue
            inner = [(np.array([[-0.1, -0.45], [0.1, -0.45], [0.1, 0.1], [0.3, 0.1], [0.0, 0.5],
                                [-0.3, 0.1], [-0.1, 0.1]]) * r + [0, cy], white)]
        elif kind == 2:  # warning triangle
            tri = np.array([[-1.0, -0.6], [1.0, -0.6], [0.0, 1.1]])
            face, color = tri * r + [0, cy], red
            inner = [(tri * r * 0.65 + [0, cy - 0.05 * r], white)]
        elif kind == 3:  # priority diamond
            dia = np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
            face, color = dia * r + [0, cy], white
            inner = [(dia * r * 0.65 + [0, cy], self.jitter((240, 195, 20), 10))]
        else:  # information panel
            face, color = rect(-1.2 * r, cy - 0.7 * r, 1.2 * r, cy + 0.7 * r), blue
            inner = [(rect(-0.9 * r, cy - 0.15 * r, 0.9 * r, cy + 0.15 * r), white)]
        obj = SceneObject("traffic sign", self.cam.billboard(face, x, z), color)
        obj.details += [Shape(self.cam.billboard(p, x, z), c) for p, c in inner]
        return [pole, obj]

    def traffic_light(self, x: float, z: float) -> list[SceneObject]:
        rng = self.rng
        hgt = rng.uniform(2.8, 4.0)
        pole = self.pole(x, z, hgt, rng.uniform(0.1, 0.16))
        bw, bh = 0.34, 0.95
        obj = SceneObject("traffic light",
                          self.cam.billboard(rect(-bw / 2, hgt, bw / 2, hgt + bh), x, z),
                          self.jitter((38, 38, 42), 6))
        lit = int(rng.integers(3))
        for i in range(3):
            cy = hgt + bh * (0.2 + 0.3 * (2 - i))
            color = LAMP_COLORS[i] if i == lit else (70, 70, 70)
            obj.details.append(Shape(self.cam.billboard(circle(0, cy, 0.1, 10), x, z), color))
        return [pole, obj]

    def tree(self, x: float, z: float) -> list[SceneObject]:
        rng = self.rng
        trunk_h, r = rng.uniform(2.0, 3.5), rng.uniform(1.2, 2.5)
        trunk_outline = rect(-0.15, 0, 0.15, trunk_h + r * 0.5)
        trunk = SceneObject("vegetation", self.cam.billboard(trunk_outline, x, z),
                            self.jitter((85, 68, 50), 10))
        center = np.array([0.0, trunk_h + r * 0.8])
        crown = center + (circle(0, 0, r, 20) * rng.uniform(0.85, 1.15, size=(20, 1)))
        leaves = SceneObject("vegetation", self.cam.billboard(crown, x, z),
                             self.jitter((55, 100, 40), 15))
        for _ in range(4):
            off = rng.uniform(-0.4, 0.4, size=2) * r
            blob = circle(center[0] + off[0], center[1] + off[1], r * 0.3, 8)
            leaves.details.append(Shape(self.cam.billboard(blob, x, z),
                                        self.jitter(leaves.color, 25)))
        return [trunk, leaves]

    def car(self, x: float, z: float) -> SceneObject:
        rng, cam = self.rng, self.cam
        tall = rng.random() < 0.2
        w = rng.uniform(1.75, 2.0) if tall else rng.uniform(1.65, 1.9)
        h = rng.uniform(1.75, 2.0) if tall else rng.uniform(1.35, 1.6)
        obj = SceneObject("car", cam.billboard(_car_outline(w, h), x, z), self.pick(CAR_COLORS, 8))
        parts = [
            (rect(-0.33 * w, 0.66 * h, 0.33 * w, 0.93 * h), self.jitter((40, 48, 58), 8)),
            (rect(-0.46 * w, 0.42 * h, -0.36 * w, 0.52 * h), self.jitter((200, 30, 30), 10)),
            (rect(0.36 * w, 0.42 * h, 0.46 * w, 0.52 * h), self.jitter((200, 30, 30), 10)),
            (rect(-0.13 * w, 0.2 * h, 0.13 * w, 0.3 * h), (230, 230, 225)),
            (rect(-0.5 * w, 0.08 * h, 0.5 * w, 0.16 * h), self.jitter((35, 35, 38), 5)),
            (rect(-0.42 * w, 0.0, -0.28 * w, 0.08 * h), (22, 22, 24)),
            (rect(0.28 * w, 0.0, 0.42 * w, 0.08 * h), (22, 22, 24)),
        ]
        obj.details += [Shape(cam.billboard(p, x, z), c) for p, c in parts]
        if self.road_obj is not None:  # shadow on the road, just behind the tyres
            self.road_obj.details.append(Shape(
                cam.ground_quad(x - w / 2, x + w / 2, z, z + 3.5), (30, 30, 34)))
        return obj

    def person(self, x: float, z: float, base_y: float = 0.0, hgt: float | None = None,
               label: str = "person") -> SceneObject:
        rng, cam = self.rng, self.cam
        hgt = rng.uniform(1.55, 1.9) if hgt is None else hgt
        stride = rng.uniform(0.0, 0.08)
        obj = SceneObject(label, cam.billboard(_person_outline(hgt, stride), x, z, base_y),
                          self.pick(CLOTHES_COLORS, 15))
        s = stride
        legs = np.array([[-0.015, 0.45], [-0.03 - s, 0.0], [-0.10 - s, 0.0], [-0.10, 0.50],
                         [0.10, 0.50], [0.10 + s, 0.0], [0.03 + s, 0.0], [0.015, 0.45]]) * hgt
        obj.details.append(Shape(cam.billboard(legs, x, z, base_y), self.pick(PANTS_COLORS, 10)))
        head = circle(0, 0.925 * hgt, 0.06 * hgt, 10)
        obj.details.append(Shape(cam.billboard(head, x, z, base_y), self.pick(SKIN_COLORS, 8)))
        hair = circle(0, 0.94 * hgt, 0.05 * hgt, 10)
        obj.details.append(Shape(cam.billboard(hair, x, z, base_y), self.jitter((45, 35, 25), 10)))
        return obj

    def cyclist(self, x: float, z: float) -> list[SceneObject]:
        frame = np.array([[-0.025, 0.0], [0.025, 0.0], [0.025, 0.55], [0.05, 0.9], [0.28, 0.95],
                          [0.28, 1.0], [-0.28, 1.0], [-0.28, 0.95], [-0.05, 0.9], [-0.025, 0.55]])
        bike = SceneObject("bicycle", self.cam.billboard(frame, x, z), self.jitter((40, 40, 45), 8))
        rider = self.person(x, z - 0.01, base_y=0.3, hgt=self.rng.uniform(1.4, 1.6),
                            label="rider")
        return [bike, rider]

    def ego_vehicle(self) -> SceneObject:
        """The bonnet of the recording car at the bottom, as in Cityscapes (ignored in training)."""
        w, h = self.cam.width, self.cam.height
        depth = h * self.rng.uniform(0.04, 0.1)
        xs = np.linspace(-1.0, w, 24)
        u = (xs - w / 2) / (w / 2)
        top = h - depth * (1.0 - 0.35 * u ** 2)
        poly = np.concatenate([np.stack([xs, top], 1), [[w, h + 1.0], [-1.0, h + 1.0]]])
        obj = SceneObject("ego vehicle", poly, self.jitter((28, 28, 32), 6))
        shine = np.concatenate([np.stack([xs[6:18], top[6:18] + depth * 0.25], 1),
                                np.stack([xs[17:5:-1], top[17:5:-1] + depth * 0.4], 1)])
        obj.details.append(Shape(shine, self.jitter((75, 78, 85), 6)))
        return obj


def build_street_scene(rng: np.random.Generator, height: int, width: int) -> list[SceneObject]:
    """One random street scene as labelled polygons in painter's order."""
    return StreetSceneBuilder(rng, height, width).build()
