"""Reading and writing videos with PyAV: probe, decode to RGB frames, encode with audio copied.

Frames are handed out in the orientation a player shows (a phone video's rotation
matrix applied) and turned back before encoding, so the output keeps the input's
coded size and matrix. Timestamps pass through untouched, which keeps variable frame
rates. Audio packets are copied, never decoded, unless the output container cannot
hold the input's audio codec.

One module per concept: ``info`` (what a file is: ``probe``, the limits), ``index`` (its
keyframes), ``reader`` (decoding), ``writer`` (encoding), ``source`` (a local file or a
stored object read in place); this package names them all.
"""

from __future__ import annotations

from veil.video.index import (
    Keyframe,
    VideoIndex,
    index_video,
)
from veil.video.info import (
    MAX_DURATION,
    MAX_FPS,
    MAX_INPUT_BYTES,
    MAX_PIXEL_RATE,
    MAX_PIXELS,
    MAX_SIDE,
    VIDEO_EXTENSIONS,
    Frame,
    VideoInfo,
    display_view,
    from_display,
    is_video_path,
    probe,
    to_display,
)
from veil.video.reader import (
    EDITABLE_FORMATS,
    DecodedFrame,
    VideoReader,
    return_frame_memory_to_the_system,
)
from veil.video.source import ReadInPlace, VideoSource, video_source
from veil.video.writer import (
    CODECS,
    EncodeOptions,
    VideoWriter,
    output_encoder,
)

__all__ = [
    "CODECS",
    "EDITABLE_FORMATS",
    "MAX_DURATION",
    "MAX_FPS",
    "MAX_INPUT_BYTES",
    "MAX_PIXELS",
    "MAX_PIXEL_RATE",
    "MAX_SIDE",
    "VIDEO_EXTENSIONS",
    "DecodedFrame",
    "EncodeOptions",
    "Frame",
    "Keyframe",
    "ReadInPlace",
    "VideoIndex",
    "VideoInfo",
    "VideoReader",
    "VideoSource",
    "VideoWriter",
    "display_view",
    "from_display",
    "index_video",
    "is_video_path",
    "output_encoder",
    "probe",
    "return_frame_memory_to_the_system",
    "to_display",
    "video_source",
]
