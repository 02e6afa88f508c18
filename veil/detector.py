"""Face detectors: the ``FaceDetector`` interface and CenterFace on ONNX Runtime."""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from veil.detections import Detections, FloatArray
from veil.errors import DetectorError, OptionError
from veil.tiling import MAX_FACE, NEAR_REACH, ChangedArea, Tile, TilePlan, near_tile, plan_tiles

Frame = npt.NDArray[np.uint8]
"""An ``(height, width, 3)`` RGB image."""

DEVICES = ("cpu", "cuda")
PRECISIONS = ("auto", "int8", "fp32")
_MODEL_FILES = {"fp32": "centerface.onnx", "int8": "centerface-int8.onnx"}
_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}
_NMS_IOU = 0.3
_CONTAINED = 0.7
"""A box this much inside a larger one is a part of that face (found at a finer level)."""
_STRIDE = 4  # CenterFace predicts on a grid four times coarser than its input


class FaceDetector(Protocol):
    """Anything that finds faces: on a whole frame, or only near boxes where a tracker
    expects faces (a cheaper look between whole-frame analyses). Boxes are in pixels of
    the frame given."""

    def detect_frame(self, frame: Frame, changed: ChangedArea | None = None) -> Detections:
        """Every face on ``frame``; with ``changed``, those a look at the changed part
        finds (a detector may look at more)."""
        ...

    def detect_near(
        self, frame: Frame, boxes: FloatArray, reach: Sequence[float] | None = None
    ) -> Detections:
        """The faces near ``boxes`` ``(k, 4)``, looked for ``reach`` face sizes around
        each (default ``NEAR_REACH``); may find others too."""
        ...


def resolved_precision(
    precision: str, device: str, instruction_sets: Sequence[str] | None = None
) -> str:
    """``auto`` as it resolves: fp32 on CUDA; on the CPU int8 where its integer arithmetic
    is exact (``int8_is_exact``), fp32 where it is not."""
    if precision != "auto":
        return precision
    if device != "cpu":
        return "fp32"
    return "int8" if int8_is_exact(instruction_sets) else "fp32"


def int8_is_exact(instruction_sets: Sequence[str] | None = None) -> bool:
    """Whether ONNX Runtime's int8 convolutions compute exact sums on this CPU. x86 CPUs
    without VNNI (AVX2, AVX-512F: many laptops and cloud VMs) multiply u8 activations by
    s8 weights with ``vpmaddubsw``, which adds pairs of products into 16 bits and
    saturates: weak faces score lower there than in fp32, and a 25 px face at a frame's
    edge stayed visible on 147 of 240 frames. VNNI (``avx512_vnni``, ``avx_vnni``) sums
    into 32 bits, as Arm's dot products do. Weights cut to 7 bits would avoid the
    saturation everywhere, but lost faces fp32 and the 8-bit model find (a 21 px face in
    dim 4K video, docs/benchmarks.md), so CPUs without VNNI get fp32: slower, and not
    saturated (fp32 itself finds fewer small faces than the 8-bit model: which of fp32
    and 7-bit weights serves those CPUs best is for the whole privacy corpus to say).
    ``instruction_sets`` defaults to this CPU's (``cpu_instruction_sets``)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    found = _this_cpu() if instruction_sets is None else instruction_sets
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(found))


@functools.cache
def _this_cpu() -> tuple[str, ...]:
    """``cpu_instruction_sets`` of this CPU, read once: every detector and report asks."""
    return tuple(cpu_instruction_sets())


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system has one (a
    ``taskset`` or a container's ``--cpuset-cpus`` gives fewer than the machine has, and
    threads beyond them only queue), else every core."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_model_path(precision: str = "fp32") -> Path:
    """The shipped model: ``fp32`` as published, or ``int8``, quantized from it by
    ``scripts/make_int8_model.py`` (about 1.8x faster where ``int8_is_exact``)."""
    return Path(__file__).with_name("models") / _MODEL_FILES[precision]


_INT8_INSTRUCTION_SETS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
"""The x86 instruction sets that pick ONNX Runtime's int8 kernels (``int8_is_exact``)."""


def cpu_instruction_sets(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """Which of ``_INT8_INSTRUCTION_SETS`` this CPU has, from the kernel's CPU flags; empty
    where they cannot be read (another OS, another architecture). Benchmarks and privacy
    reports record it, since int8 kernels differ between CPUs."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return [name for name in _INT8_INSTRUCTION_SETS if name in flags]


class CenterFace:
    """CenterFace (MIT) on ONNX Runtime, over a pyramid of tiles (``veil.tiling``).

    Each frame is analysed at several scales, each cut into tiles of bounded size, so a
    16 px face and a close-up that fills the frame are both found whole, and the memory
    the detector needs does not depend on the frame's size. Detections of all tiles are
    merged so one face gets one box.

    Args:
        threshold: lowest heat-map score kept, ``0 < threshold < 1``; lower finds more
            small and turned faces and more false alarms.
        scale: detector input pixels per frame pixel at the finest level, ``0 < scale
            <= 4``: 2 finds faces from 16 px, 1 from about 32 px at a quarter of the cost.
        device: ``"cpu"`` or ``"cuda"``.
        precision: ``"int8"``, ``"fp32"``, or ``"auto"``: int8 on CPUs where its
            arithmetic is exact (``int8_is_exact``), where it is faster; fp32 on other
            CPUs and on CUDA.
        threads: ONNX Runtime intra-op threads; ``None`` uses every core.
        model_path: another CenterFace ONNX file, overriding ``precision``.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.2,
        scale: float = 2.0,
        device: str = "cpu",
        precision: str = "auto",
        threads: int | None = None,
        model_path: Path | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise OptionError(f"threshold must be between 0 and 1, got {threshold}")
        if not 0.0 < scale <= 4.0:
            raise OptionError(f"scale must be above 0 and at most 4, got {scale}")
        if device not in DEVICES:
            raise OptionError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
        if precision not in PRECISIONS:
            raise OptionError(
                f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        self.precision = precision = resolved_precision(precision, device)
        self.threshold = threshold
        self.scale = scale
        self.device = device
        self._session = _open_session(model_path or default_model_path(precision), device, threads)
        self._input_name = self._session.get_inputs()[0].name
        self._plans: dict[tuple[int, int], TilePlan] = {}
        self._buffer = np.zeros(0, np.float32)
        self.input_pixels = 0
        """Detector input pixels analysed so far, padding included: its cost."""

    def plan(self, width: int, height: int) -> TilePlan:
        """The tiles analysed on a ``width`` x ``height`` frame."""
        key = (width, height)
        if key not in self._plans:
            self._plans[key] = plan_tiles(width, height, self.scale)
        return self._plans[key]

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return [self.detect_frame(frame) for frame in frames]

    def detect_frame(self, frame: Frame, changed: ChangedArea | None = None) -> Detections:
        """The faces on one frame, one box each, in the frame's pixels; with ``changed``,
        the finer levels only over the changed part (``TilePlan.tiles_within``)."""
        height, width = frame.shape[:2]
        plan = self.plan(width, height)
        tiles = plan.tiles if changed is None else plan.tiles_within(changed)
        found = [self._detect_tile(frame, tile, plan.largest_face(tile.level)) for tile in tiles]
        return merged(found, width, height)

    def detect_near(
        self, frame: Frame, boxes: FloatArray, reach: Sequence[float] | None = None
    ) -> Detections:
        """The faces near ``boxes`` ``(k, 4)`` (where tracks predict faces), looked for in a
        small tile around each (``veil.tiling.near_tile``, ``reach`` face sizes each way):
        far cheaper than a whole frame."""
        height, width = frame.shape[:2]
        reaches = reach if reach is not None else [NEAR_REACH] * len(boxes)
        tiles = [
            near_tile(box, width, height, self.scale, far)
            for box, far in zip(boxes, reaches, strict=True)
        ]
        found = [self._detect_tile(frame, tile, MAX_FACE) for tile in tiles if tile is not None]
        return merged(found, width, height)

    def _detect_tile(self, frame: Frame, tile: Tile, largest: float) -> Detections:
        region = frame[tile.y1 : tile.y2, tile.x1 : tile.x2]
        content_w, content_h = tile.content_size
        resized = (
            region
            if (content_w, content_h) == (region.shape[1], region.shape[0])
            else cv2.resize(
                region,
                (content_w, content_h),
                interpolation=cv2.INTER_AREA if tile.scale < 1 else cv2.INTER_LINEAR,
            )
        )
        self.input_pixels += tile.input_width * tile.input_height
        batch = self._input(tile.input_width, tile.input_height)
        # The buffer is reused: clear the padding another tile may have left.
        batch[0, :, content_h:, :] = 0
        batch[0, :, :content_h, content_w:] = 0
        batch[0, :, :content_h, :content_w] = resized.transpose(2, 0, 1)
        try:
            heat, size, offset, marks = self._session.run(None, {self._input_name: batch})
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise DetectorError(f"face detection failed: {exc}") from exc
        found = self._decode(heat[0, 0], size[0], offset[0], marks[0])
        # Faces this large belong to a coarser level; here they are parts or false alarms.
        found = found[found.height <= largest]
        # A box at an edge shared with a neighbouring tile may be a face cut in two; the
        # neighbour sees that face whole (tiles overlap by more than the faces this level
        # owns), so the cut one must not compete with it.
        found = found[~self._at_inner_edge(found, tile, frame.shape[1], frame.shape[0])]
        sx = (tile.x2 - tile.x1) / content_w
        sy = (tile.y2 - tile.y1) / content_h
        return found.scaled(sx, sy).shifted(tile.x1, tile.y1)

    @staticmethod
    def _at_inner_edge(
        found: Detections, tile: Tile, width: int, height: int
    ) -> npt.NDArray[np.bool_]:
        """Which of ``found`` (input pixels of ``tile``) touch an edge another tile shares."""
        content_w, content_h = tile.content_size
        margin = np.maximum(2.0, 0.1 * found.height)
        x1, y1, x2, y2 = found.xyxy.T
        inner: npt.NDArray[np.bool_] = (
            ((tile.x1 > 0) & (x1 < margin))
            | ((tile.y1 > 0) & (y1 < margin))
            | ((tile.x2 < width) & (x2 > content_w - margin))
            | ((tile.y2 < height) & (y2 > content_h - margin))
        )
        return inner

    def _input(self, width: int, height: int) -> npt.NDArray[np.float32]:
        """The network's input for a ``width`` x ``height`` tile: a view of one buffer
        kept for every tile, since tiles near faces and over changes come in many sizes
        (one buffer per size grew by a 4K tile, 12 MB, for each new size)."""
        needed = 3 * width * height
        if self._buffer.size < needed:
            self._buffer = np.zeros(needed, np.float32)
        return self._buffer[:needed].reshape(1, 3, height, width)

    def _decode(
        self,
        heat: npt.NDArray[np.float32],
        size: npt.NDArray[np.float32],
        offset: npt.NDArray[np.float32],
        marks: npt.NDArray[np.float32],
    ) -> Detections:
        ys, xs = np.nonzero(heat > self.threshold)
        if len(ys) == 0:
            return Detections.empty()
        h = np.exp(size[0, ys, xs]) * _STRIDE
        w = np.exp(size[1, ys, xs]) * _STRIDE
        cx = (xs + offset[1, ys, xs] + 0.5) * _STRIDE
        cy = (ys + offset[0, ys, xs] + 0.5) * _STRIDE
        x1, y1 = cx - w / 2, cy - h / 2
        boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)
        scores = heat[ys, xs].astype(np.float32)
        # Landmark channels alternate y, x per point, relative to the box's corner.
        lm_y = marks[0::2, ys, xs].T * h[:, None] + y1[:, None]
        lm_x = marks[1::2, ys, xs].T * w[:, None] + x1[:, None]
        landmarks = np.stack([lm_x, lm_y], axis=2).astype(np.float32)
        keep = cv2.dnn.NMSBoxes(
            np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist(),
            scores.tolist(),
            self.threshold,
            _NMS_IOU,
        )
        kept = np.asarray(keep, np.int64).reshape(-1)
        return Detections.from_boxes(boxes[kept], scores[kept], landmarks[kept])


def merged(parts: Sequence[Detections], width: int, height: int) -> Detections:
    """One box per face of ``parts`` (tiles' or analyses' detections on one frame of
    ``width`` x ``height``): overlapping boxes and boxes inside a larger one (a face's
    parts, found at a finer level) give way to the strongest, larger one."""
    return Detections.concatenate(parts).deduplicated(_NMS_IOU, _CONTAINED).clipped(width, height)


def _open_session(model_path: Path, device: str, threads: int | None) -> Any:
    import onnxruntime as ort

    # ``veil/__init__.py`` keeps telemetry from starting; this also stops its events where
    # onnxruntime was imported before veil (a program that uses both).
    ort.disable_telemetry_events()
    if not model_path.is_file():
        raise DetectorError(f"face model not found at {model_path}; reinstall veil")
    available = ort.get_available_providers()
    wanted = _PROVIDERS[device]
    if wanted[0] not in available:
        raise DetectorError(
            f"{wanted[0]} is not available; available: {available}; pass --device cpu"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle detector threads must not spin: the decoder and encoder need those cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_mem_pattern = False
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=wanted)
    except Exception as exc:
        raise DetectorError(f"cannot load face model {model_path}: {exc}") from exc
