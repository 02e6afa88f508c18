"""A video's keyframes from its packets alone (``index_video``): where segments may be
cut, and where a reader seeking to one starts."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av

from veil.errors import CorruptVideoError
from veil.video.info import open_input, video_stream


@dataclass(frozen=True)
class Keyframe:
    """A frame decoding can start at: its presentation and decoding times (in the video
    stream's time base) and its index among the frames a player shows."""

    pts: int
    dts: int | None
    index: int


@dataclass(frozen=True)
class VideoIndex:
    """Where a video's frames are, read from its packets (``index_video``)."""

    time_base: Fraction
    pts: tuple[int, ...]
    """Each shown frame's presentation time, in order: ``pts[i]`` is frame ``i``'s."""
    keyframes: tuple[Keyframe, ...]
    """The frames decoding can start at, in order."""

    def seconds(self, index: int) -> float:
        """Frame ``index``'s time from the first frame, in seconds."""
        return float((self.pts[index] - self.pts[0]) * self.time_base)


def index_video(path: str | Path) -> VideoIndex | None:
    """Every frame's timestamp and the keyframes, from the packets (decoding only the
    first frame), or ``None`` when the video cannot be entered part-way by timestamp:
    a packet without one, two frames with the same one, or no keyframe.

    The frames are numbered as ``VideoReader`` numbers them: in presentation order,
    without those an edit list hides (FFmpeg marks their packets to discard) or a decoder
    cannot show (leading pictures of an open GOP at the very start). A truncated file is
    refused as ``VideoReader`` refuses it (``CorruptVideoError``).
    """
    path = Path(path)
    with contextlib.closing(open_input(path)) as container:
        stream = video_stream(container, path)
        pts: list[int] = []
        keyframes: list[tuple[int, int | None]] = []
        timed = True
        stored = 0
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                stored += 1
                if packet.is_discard:
                    continue
                if packet.pts is None:
                    timed = False
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.append((packet.pts, packet.dts))
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"corrupt or truncated video ({exc})") from exc
        expected = stream.frames or None
        if expected and stored < expected * 0.98 - 1:
            raise CorruptVideoError(
                path, f"truncated video: the file holds {stored} of {expected} frames"
            )
        time_base = stream.time_base
    shown = sorted(pts)
    if not timed or not shown or not keyframes or len(set(shown)) < len(shown):
        return None
    first = _first_shown_pts(path)
    if first is None:
        return None
    shown = [p for p in shown if p >= first]
    # A keyframe before the first frame shown (an edit list starting mid-GOP) is where
    # decoding the first frames starts: numbered 0, as the first frame shown after it.
    starts = tuple(Keyframe(p, d, bisect.bisect_left(shown, p)) for p, d in sorted(set(keyframes)))
    return VideoIndex(time_base, tuple(shown), starts)


def _first_shown_pts(path: Path) -> int | None:
    """The timestamp of the first frame a decoder shows (``None``: it has none)."""
    with contextlib.closing(open_input(path)) as container:
        try:
            for frame in container.decode(video_stream(container, path)):
                return cast(int | None, frame.pts)
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"cannot decode the first frame ({exc})") from exc
    return None


def packets_from(
    packets: Iterator[Any], start: Keyframe, before: int | None
) -> Generator[Any, None, bool]:
    """Yield ``packets`` from the keyframe ``start`` on; returns whether it was found,
    giving up at a packet decoded after it (``before``: its decoding time)."""
    for packet in packets:
        if not packet.size:
            continue
        if packet.is_keyframe and packet.pts == start.pts:
            yield packet
            yield from packets
            return True
        passed = packet.dts if packet.dts is not None else packet.pts
        if before is not None and passed is not None and passed > before:
            return False  # landed after the keyframe: seek earlier
    return False
