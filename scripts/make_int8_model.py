"""Make veil/models/centerface-int8.onnx from centerface.onnx (run once, at development time).

Static int8 quantization (QDQ, per-channel weights) with ONNX Runtime's tools. Needs the
``onnx`` package, which veil does not need at run time::

    pip install onnx && python scripts/make_int8_model.py

Calibration uses whole photos that scikit-image and matplotlib ship, at several sizes,
and none of the synthetic scenes the tests and the benchmark measure recall on. The
graph is first moved from opset 9 to 13, which per-channel quantization needs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO, cast

import cv2
import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from skimage import data

MODELS = Path(__file__).resolve().parent.parent / "veil" / "models"


def calibration_images() -> list[np.ndarray]:
    import matplotlib.cbook

    sample = cast(IO[bytes], matplotlib.cbook.get_sample_data("grace_hopper.jpg"))
    with sample as f:
        decoded = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None, "matplotlib's grace_hopper.jpg did not decode"
    hopper = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    photos = [
        data.astronaut(),
        hopper,
        cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
    ]
    images = []
    for photo in photos:
        for size in (96, 192, 384, 736):
            # Each photo shrunk and tiled over a 736x1280 input, so faces of many sizes are seen.
            small = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
            reps = (736 // size + 1, 1280 // size + 1, 1)
            images.append(np.tile(small, reps)[:736, :1280])
    return images


class Reader(CalibrationDataReader):
    def __init__(self) -> None:
        self._items = iter(
            [
                {"input.1": img.transpose(2, 0, 1)[None].astype(np.float32)}
                for img in calibration_images()
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        opset13 = Path(tmp) / "opset13.onnx"
        prepared = Path(tmp) / "prepared.onnx"
        onnx.save(
            version_converter.convert_version(onnx.load(MODELS / "centerface.onnx"), 13), opset13
        )
        quant_pre_process(str(opset13), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(MODELS / "centerface-int8.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    print(f"wrote {MODELS / 'centerface-int8.onnx'}")


if __name__ == "__main__":
    main()
