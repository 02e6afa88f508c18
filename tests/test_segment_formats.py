"""Segments on every kind of file of the format corpus (``tests/corpus.py``): cut where
its keyframes allow and joined, each is the file a run over the whole of it writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import av
import pytest
from corpus import VALID, Sample, build_all

from veil.pipeline import blur_video
from veil.segments import blur_segmented


def layout(path: Path) -> dict[str, Any]:
    """What a player and a muxer see besides the picture: streams, tags, chapters, the
    frames' times and every packet of the other streams."""
    with av.open(str(path)) as container:
        streams = container.streams
        facts: dict[str, Any] = {
            "format": container.format.name,
            "tags": dict(container.metadata),
            "chapters": container.chapters(),
            "streams": [
                (s.type, s.codec_context and s.codec_context.name, dict(s.metadata), s.disposition)
                for s in streams
            ],
            "times": [f.pts for f in container.decode(streams.video[0])],
        }
    with av.open(str(path)) as container:
        others = [s for s in container.streams if s.index != container.streams.video[0].index]
        facts["others"] = [
            (p.stream.index, p.pts, p.dts, hashlib.sha256(bytes(p)).hexdigest())
            for p in (container.demux(*others) if others else ())
            if p.size
        ]
    return facts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sample | Path]:
    return build_all(tmp_path_factory.mktemp("corpus"), VALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_kind_of_file_joins_as_the_whole_run_writes_it(corpus, tmp_path, name):
    """The format corpus, cut every half second where its keyframes allow (MJPEG: every
    frame is one; the trimmed clip's edit list starts mid-GOP), or kept whole: the same
    container, streams, tags, chapters, subtitles, audio packets and frame times as the
    run over the whole file, and the same faces file."""
    sample = corpus[name]
    assert isinstance(sample, Sample)
    suffix = sample.path.suffix
    one, out = tmp_path / f"one{suffix}", tmp_path / f"out{suffix}"
    blur_video(sample.path, one, faces_out=tmp_path / "one.json")
    blur_segmented(sample.path, out, 0.5, faces_out=tmp_path / "out.json", work=tmp_path)
    assert layout(out) == layout(one)
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(
        (tmp_path / "one.json").read_text()
    )
