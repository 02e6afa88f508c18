"""``veil live``: a camera feed anonymized before anyone sees it (``veil.live``)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

import click

from veil.anonymizers import MODES
from veil.cli.common import (
    PRESETS,
    as_duration,
    blur_option,
    blur_options_from,
    detection_options,
    duration,
    main,
    report_failure,
)
from veil.errors import OptionError
from veil.live import DEFAULT_DELAY, READER_THREAD, LiveOptions, LiveStats, run_live, shown

_LIVE = LiveOptions()


@main.command()
@click.argument("source", metavar="SOURCE")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="OUTPUT",
    help="DIR/index.m3u8 for HLS (short segments, a sliding window, old segments deleted), or a udp://, tcp:// or srt:// address (MPEG-TS), rtmp:// (FLV) or rtsp:// (a server to push to).",
)
@click.option(
    "--delay",
    type=click.FloatRange(0.2, 30),
    default=DEFAULT_DELAY,
    show_default=True,
    help="Seconds a frame may wait between arriving and leaving. Faces are covered from before their first detection within it; a frame that cannot be analysed within it is covered whole, never sent raw.",
)
@click.option(
    "--realtime",
    is_flag=True,
    help="SOURCE is a file: play it at its own pace (for demos and tests).",
)
@click.option("--loop", is_flag=True, help="With --realtime: start the file again at its end.")
@click.option(
    "--keep-audio/--no-audio",
    default=_LIVE.keep_audio,
    show_default=True,
    help="Pass the source's audio on (as AAC, in step with the video).",
)
@click.option(
    "--segment-seconds",
    type=click.FloatRange(0.5, 30),
    default=_LIVE.segment_seconds,
    show_default=True,
    help="HLS: the length of a segment.",
)
@click.option(
    "--window",
    type=click.IntRange(2, 100),
    default=_LIVE.window,
    show_default=True,
    help="HLS: how many segments the playlist lists; older ones are deleted.",
)
@click.option(
    "--record",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also keep the anonymized stream in this folder, in MPEG-TS files of --record-seconds.",
)
@click.option(
    "--record-seconds",
    type=click.FloatRange(5, 86400),
    default=_LIVE.record_seconds,
    show_default=True,
    help="Length of each recorded file.",
)
@click.option(
    "--record-keep",
    default=as_duration(_LIVE.record_keep),
    show_default=True,
    callback=duration,
    help="Delete recorded files this long after they were finished (30d, 12h, 45m or seconds; 0 keeps them).",
)
@click.option(
    "--rtsp-transport",
    type=click.Choice(("tcp", "udp")),
    default=_LIVE.rtsp_transport,
    show_default=True,
    help="How RTSP sources and outputs carry their packets.",
)
@detection_options
@blur_option("--mode", click.Choice(MODES), "How faces are hidden.")
@blur_option("--box-scale", click.FloatRange(1, 4), "Grow each face box by this factor.")
@blur_option("--crf", click.IntRange(0, 51), "Quality (x264's scale): lower is better and bigger.")
@blur_option("--preset", click.Choice(PRESETS), "x264 speed preset.")
@click.option("-q", "--quiet", is_flag=True, help="No status line every few seconds.")
@click.option("--json", "as_json", is_flag=True, help="At the end, print the figures as JSON.")
def live(
    source: str,
    output: str,
    delay: float,
    realtime: bool,
    loop: bool,
    keep_audio: bool,
    segment_seconds: float,
    window: int,
    record: Path | None,
    record_seconds: float,
    record_keep: float,
    rtsp_transport: str,
    quiet: bool,
    as_json: bool,
    **opts: Any,
) -> None:
    """Anonymize SOURCE live into OUTPUT, until the source ends or Ctrl-C.

    SOURCE: rtsp://, rtmp://, srt://, udp:// or tcp:// (MPEG-TS), http(s):// (HLS or
    MPEG-TS), a V4L2 device (/dev/video0), or a file with --realtime. A lost network
    source is retried with growing waits while the output shows a slate. Addresses are
    never shown with their password.
    """
    blur = blur_options_from(opts)
    try:
        options = LiveOptions(
            delay=delay,
            keep_audio=keep_audio,
            realtime=realtime,
            loop=loop,
            segment_seconds=segment_seconds,
            window=window,
            rtsp_transport=rtsp_transport,
            record=record,
            record_seconds=record_seconds,
            record_keep=record_keep,
        )
    except OptionError as exc:
        raise click.UsageError(str(exc)) from exc
    if loop and not realtime:
        raise click.UsageError("--loop plays a file again: give --realtime with it")
    stop = threading.Event()

    def stopping(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: at once
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stopping)

    def say(stats: LiveStats) -> None:
        click.echo(f"veil live: {stats.line()}", err=True)

    if not quiet:
        click.echo(f"veil live: {shown(source)} -> {shown(output)}, delay {delay:g} s", err=True)
    try:
        stats = run_live(source, output, options, blur, stop=stop, status=None if quiet else say)
    except Exception as exc:  # one line, never a traceback with the source's address
        _leave(report_failure(exc))
    if not quiet:
        click.echo(f"veil live: stopped: {stats.line()}", err=True)
    if as_json:
        click.echo(json.dumps(stats.to_json()))
    _leave(0)


def _leave(code: int) -> NoReturn:
    """Exit with ``code``, the output closed and the words said. While the reader thread
    still waits in FFmpeg for a source that does not answer (up to its timeout), at once:
    Python's own shutdown around a thread inside FFmpeg can crash (a segfault was seen
    once in 18 stops)."""
    if any(t.name == READER_THREAD and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
