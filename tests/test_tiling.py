"""The detector's pyramid of tiles: bounded input, whole faces at every size and place."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from params import each_photo

from veil.anonymizers import get_anonymizer
from veil.detections import Detections, box_iou
from veil.detector import CenterFace
from veil.synthetic import MovingFace, Scene, face_visibility, part_visibility
from veil.tiling import (
    MAX_FACE,
    MAX_TILE_PIXELS,
    MAX_TILE_SIDE,
    MIN_FACE,
    ChangedArea,
    plan_tiles,
)

SIZES = [(320, 240), (173, 97), (1280, 720), (1920, 1080), (3840, 2160), (1080, 1920), (7680, 4320)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_every_level_covers_the_frame_with_bounded_tiles(width, height):
    plan = plan_tiles(width, height)
    assert plan.scales[-1] == pytest.approx(2.0)
    assert min(width, height) * plan.scales[0] <= 256 or len(plan.scales) == 1
    for level, scale in enumerate(plan.scales):
        tiles = [t for t in plan.tiles if t.level == level]
        covered = np.zeros((height, width), bool)
        for tile in tiles:
            assert tile.input_width * tile.input_height <= MAX_TILE_PIXELS
            assert max(tile.input_width, tile.input_height) <= MAX_TILE_SIDE
            assert tile.input_width % 32 == 0 and tile.input_height % 32 == 0
            covered[tile.y1 : tile.y2, tile.x1 : tile.x2] = True
            assert tile.scale == scale
        assert covered.all(), f"level {level} leaves part of the frame unseen"


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_neighbouring_levels_hand_faces_over(width, height):
    # A face just too small for one level must be comfortably found by the next finer one.
    scales = plan_tiles(width, height).scales
    for coarse, fine in itertools.pairwise(scales):
        assert MIN_FACE * fine / coarse <= MAX_FACE / 2


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (3840, 2160), (1080, 1920)])
def test_tiles_overlap_by_the_largest_face_their_level_owns(width, height):
    plan = plan_tiles(width, height)
    for level in range(1, len(plan.scales)):
        owned = MIN_FACE * plan.scales[level] / plan.scales[level - 1] / plan.scales[level]
        tiles = [t for t in plan.tiles if t.level == level]
        xs = sorted({(t.x1, t.x2) for t in tiles})
        for (_, end), (start, _) in itertools.pairwise(xs):
            assert end - start >= owned, f"level {level}: {end - start} px overlap"


def test_detector_input_does_not_grow_with_the_frame():
    small, huge = plan_tiles(1280, 720), plan_tiles(7680, 4320)
    largest = max(t.input_width * t.input_height for t in huge.tiles)
    assert largest <= MAX_TILE_PIXELS
    assert len(huge.tiles) > len(small.tiles)


@pytest.fixture(scope="module")
def detector() -> CenterFace:
    return CenterFace(threshold=0.05)


def hidden(detector: CenterFace, scene: Scene) -> dict[str, float]:
    """Blur what the detector finds (boxes grown 1.3, as veil does) and return how much of
    each part of the face survives."""
    frame, truth, _ = scene.render(0)
    found = detector.detect_frame(frame)
    found = found[found.confidence >= 0.2]
    out = get_anonymizer("blur").apply(frame.copy(), found.grown(1.3))
    return part_visibility(frame, out, truth[0])


def _seam(width: int, height: int) -> tuple[float, float]:
    """Where the finest level's first tile ends, across and down, as fractions of the
    frame (the middle where the level has one tile that way)."""
    plan = plan_tiles(width, height)
    finest = [t for t in plan.tiles if t.level == len(plan.scales) - 1]
    ends_x = [t.x2 for t in finest if t.x2 < width]
    ends_y = [t.y2 for t in finest if t.y2 < height]
    return (
        min(ends_x) / width if ends_x else 0.5,
        min(ends_y) / height if ends_y else 0.5,
    )


@pytest.mark.parametrize(
    ("photo", "width", "height", "face", "where"),
    each_photo(
        [
            (1280, 720, 20, "vertical seam"),
            (1280, 720, 48, "vertical seam"),
            (1280, 720, 72, "corner"),
            (1920, 1080, 40, "corner"),
            (1920, 1080, 90, "horizontal seam"),
            (1280, 720, 300, "vertical seam"),  # larger than the finest level's overlap
        ]
    ),
)
def test_faces_on_seams_are_hidden_whole(detector, photo, width, height, face, where):
    sx, sy = _seam(width, height)
    centre = {
        "vertical seam": (sx, 0.5),
        "horizontal seam": (0.5, sy),
        "corner": (sx, sy),
    }[where]
    scene = Scene(
        width=width,
        height=height,
        frames=1,
        faces=(MovingFace(photo=photo, height=face, start=centre),),
    )
    parts = hidden(detector, scene)
    assert max(parts.values()) < 0.6, parts


FRACTIONS = (0.5, 0.7, 0.95)  # of the frame's height


@pytest.mark.parametrize(
    ("photo", "width", "height", "fraction"),
    [
        *each_photo(
            (w, h, f) for (w, h), f in itertools.product(((1280, 720), (1920, 1080)), FRACTIONS)
        ),
        *each_photo(((3840, 2160, f) for f in FRACTIONS), slow=True),
    ],
)
def test_close_ups_are_hidden_whole(detector, photo, width, height, fraction):
    # A face filling most of the frame: eyes, nose, mouth and chin all hidden, not just
    # the part a high-resolution pass would find.
    scene = Scene(
        width=width,
        height=height,
        frames=1,
        faces=(MovingFace(photo=photo, height=fraction * height, start=(0.5, 0.5)),),
    )
    parts = hidden(detector, scene)
    assert max(parts.values()) < 0.6, parts


@pytest.mark.parametrize(
    ("width", "height"), [(1280, 720), pytest.param(3840, 2160, marks=pytest.mark.slow)]
)
def test_a_close_up_gets_one_box_not_its_parts(detector, width, height):
    scene = Scene(
        width=width,
        height=height,
        frames=1,
        faces=(MovingFace(photo="grace_hopper", height=0.9 * height, start=(0.5, 0.5)),),
    )
    frame, truth, _ = scene.render(0)
    found = detector.detect_frame(frame)
    strong = found[found.confidence >= 0.2]
    on_face = strong[box_iou(truth, strong.xyxy)[0] > 0]
    assert len(on_face) == 1, on_face.xyxy
    _, top, _, bottom = on_face.xyxy[0]
    assert bottom - top > 0.8 * (truth[0, 3] - truth[0, 1])


@pytest.mark.slow  # a whole 4K pyramid: seconds of CPU
def test_a_scene_without_faces_has_no_large_false_boxes(detector):
    frame, _, _ = Scene(width=3840, height=2160, frames=1).render(0)
    found = detector.detect_frame(frame)
    assert not (found.confidence >= 0.2).any()


def test_visibility_sees_a_face_whose_eyes_alone_are_hidden():
    # The check itself: covering the eyes only must not pass for a hidden face.
    scene = Scene(width=640, height=480, frames=1, faces=(MovingFace(height=300),))
    frame, truth, _ = scene.render(0)
    x1, y1, x2, y2 = truth[0]
    eyes = np.array([[x1, y1, x2, y1 + 0.45 * (y2 - y1)]], np.float32)
    out = get_anonymizer("blur").apply(frame.copy(), Detections.from_boxes(eyes))
    assert part_visibility(frame, out, truth[0])["eyes"] < 0.6
    assert face_visibility(frame, out, truth[0]) > 0.9


def _area(width: int, height: int, cell: int, changed: list[tuple[int, int]]) -> ChangedArea:
    cells = np.zeros((-(-height // cell), -(-width // cell)), bool)
    for row, column in changed:
        cells[row, column] = True
    return ChangedArea(cells, cell, width, height)


@pytest.mark.parametrize(
    ("width", "height", "cell", "changed"),
    [
        (1280, 720, 16, [(20, 40)]),  # one cell in the middle
        (1280, 720, 16, [(0, 0)]),  # a corner
        (1280, 720, 16, [(44, 79)]),  # the last, cut, row and column
        (1280, 720, 16, [(5, 5), (40, 70)]),  # far apart: two regions
        (1280, 720, 16, [(10, 10), (10, 16), (16, 13)]),  # close: their reaches merge
        (3840, 2160, 48, [(3, 3), (30, 60), (31, 62)]),
        (1080, 1920, 24, [(79, 0), (0, 44)]),
    ],
)
def test_changed_regions_cover_each_change_and_its_reach_once(width, height, cell, changed):
    area = _area(width, height, cell, changed)
    reach = 40.0
    regions = area.regions(reach)
    covered = np.zeros((height, width), np.int32)
    for x1, y1, x2, y2 in regions:
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        covered[y1:y2, x1:x2] += 1
    assert covered.max() == 1, "regions overlap"
    for row, column in changed:
        y1, x1 = max(0, int(row * cell - reach)), max(0, int(column * cell - reach))
        y2, x2 = (
            min(height, int((row + 1) * cell + reach)),
            min(width, int((column + 1) * cell + reach)),
        )
        assert covered[y1:y2, x1:x2].all(), f"cell {row, column} or its reach left out"


@pytest.mark.parametrize(
    ("width", "height"), [(1280, 720), (1920, 1080), (3840, 2160), (1080, 1920)]
)
def test_a_change_is_analysed_at_every_finer_level_with_a_face_around_it(width, height):
    """``tiles_within``: the coarsest level whole; each finer one over the change and the
    largest face it owns around it (so a face touching the change is whole in a tile),
    in tiles of bounded size, and far fewer input pixels than the whole plan."""
    plan = plan_tiles(width, height)
    cell = 16
    area = _area(width, height, cell, [(10, 12)])
    tiles = plan.tiles_within(area)
    assert [t for t in tiles if t.level == 0] == [t for t in plan.tiles if t.level == 0]
    for level in range(1, len(plan.scales)):
        owned = MIN_FACE * plan.scales[level] / plan.scales[level - 1] / plan.scales[level]
        covered = np.zeros((height, width), bool)
        for tile in (t for t in tiles if t.level == level):
            assert tile.input_width * tile.input_height <= MAX_TILE_PIXELS
            covered[tile.y1 : tile.y2, tile.x1 : tile.x2] = True
        y1, x1 = max(0, int(10 * cell - owned)), max(0, int(12 * cell - owned))
        assert covered[y1 : int(11 * cell + owned), x1 : int(13 * cell + owned)].all()
    assert sum(t.input_width * t.input_height for t in tiles) < plan.input_pixels / 4


@pytest.mark.parametrize(
    ("size", "where"), [(16, (0.3, 0.4)), (40, (0.6, 0.5)), (120, (0.45, 0.55))]
)
def test_a_look_at_the_changed_part_finds_the_faces_there(detector, size, where):
    """The faces inside a changed part are found as a look at the whole frame finds them."""
    scene = Scene(width=1280, height=720, frames=1, faces=(MovingFace(height=size, start=where),))
    frame, truth, _ = scene.render(0)
    x1, y1, x2, y2 = truth[0]
    cells = np.zeros((45, 80), bool)
    cells[int(y1 // 16) : int(y2 // 16) + 1, int(x1 // 16) : int(x2 // 16) + 1] = True
    part = detector.detect_frame(frame, ChangedArea(cells, 16, 1280, 720))
    whole = detector.detect_frame(frame)
    found = part[part.confidence >= 0.2]
    assert len(found) == 1
    assert box_iou(found.xyxy, truth)[0, 0] > 0.5
    best = whole[whole.confidence >= 0.2]
    assert box_iou(found.xyxy, best.xyxy).max() > 0.8


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (3840, 2160)])
def test_changes_all_over_cost_no_more_than_the_whole_frame(width, height):
    """Changes spread over the frame: each level costs at most what it costs whole."""
    plan = plan_tiles(width, height)
    cell = 16
    rows, columns = -(-height // cell), -(-width // cell)
    spread = [
        (row, column)
        for row in range(0, rows, rows // 6)
        for column in range(0, columns, columns // 9)
    ]
    tiles = plan.tiles_within(_area(width, height, cell, spread))
    for level in range(len(plan.scales)):
        part = sum(t.input_width * t.input_height for t in tiles if t.level == level)
        whole = sum(t.input_width * t.input_height for t in plan.tiles if t.level == level)
        assert part <= whole


@pytest.mark.parametrize(
    ("width", "height"), [(1280, 720), (1920, 1080), (3840, 2160), (720, 1280)]
)
@pytest.mark.parametrize("cell", [8, 16])
def test_a_face_next_to_a_change_is_whole_in_a_tile_of_its_level(width, height, cell):
    """A face found before no longer stands once a cell within one of it changes
    (``unchanged_under``), so a tile of the level that owns its size must see it whole,
    with the margin a tile keeps from its inner edges."""
    plan = plan_tiles(width, height)
    row, column = height // cell // 2, width // cell // 2
    area = _area(width, height, cell, [(row, column)])
    tiles = plan.tiles_within(area)
    for level in range(1, len(plan.scales)):
        s = plan.scales[level]
        owned = MIN_FACE * s / plan.scales[level - 1] / s  # frame pixels
        # Just close enough to the changed cell not to stand, on each side of it.
        near = (column + 2) * cell - 0.01
        far = column * cell - cell + 0.01
        top = row * cell - owned / 2
        for x1 in (near, far - owned):
            box = (x1, top, x1 + owned, top + owned)
            assert not area.unchanged_under(box)
            margin = max(2 / s, 0.1 * owned) + 1
            assert any(
                t.level == level
                and (t.x1 == 0 or t.x1 <= box[0] - margin)
                and (t.y1 == 0 or t.y1 <= box[1] - margin)
                and (t.x2 == width or t.x2 >= box[2] + margin)
                and (t.y2 == height or t.y2 >= box[3] + margin)
                for t in tiles
            ), f"level {level}: a {owned:.0f} px face at x {x1:.0f} is whole in no tile"
