"""`redact-image`: finds faces or licence plates in private photographs and blurs them, inside the enclave.

A photograph goes in encrypted; what leaves is the photograph with every detection blurred and a
report of where they were, so the host never sees the original. The detectors are OpenCV's Haar
cascades, shipped inside the ``opencv-python-headless`` wheel (``pip install 'adytum[vision]'``):
nothing is downloaded at run time. Their SHA-256 is pinned below, so this measured file fixes the
model too: a different cascade is refused, not used.

Inputs: JPEG or PNG images, each up to :data:`MAX_PIXELS` (:data:`MAX_ORDER_PIXELS` together); optionally, first, a text item naming what
to find: ``faces`` (the default), ``plates`` or ``faces plates``. Outputs: one redacted image per input
image, in its format (re-encoding drops every metadata block, EXIF and GPS included), then a JSON report::

    {"counts": {"faces": 1}, "images": [{"faces": [[177, 67, 93, 93]], "height": 512, "width": 512}]}

Boxes are ``[x, y, width, height]`` in pixels of the input image. Detection runs on a copy whose
longer side is at most :data:`DETECT_SIDE` pixels, so its time does not grow with the photograph's
resolution (a face smaller than about 1/40 of the longer side is not found); the blur is applied
at full resolution, to each box grown by :data:`MARGIN` on every side.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

from .base import Context, Workload, WorkloadError

#: target -> (cascade file inside cv2.data, its SHA-256 in opencv-python-headless 4.14.0.94)
CASCADES = {
    "faces": (
        "haarcascade_frontalface_default.xml",
        "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0",
    ),
    "plates": (
        "haarcascade_russian_plate_number.xml",
        "814cb5954682af570e58361f9e5f8b5b513a4112776bb9ecacef9f0e4ca6c2d7",
    ),
}
#: Largest image accepted, in pixels (checked from the header, before anything is decoded), and the most
#: pixels of one order: about 4 s for 40 megapixels on a loaded 2-core machine, well inside the enclave's
#: time budget (30 s by default) and memory budget (a 40-megapixel order peaks near 0.5 GB).
MAX_PIXELS = 40_000_000
MAX_ORDER_PIXELS = 100_000_000
#: Longer side of the copy the detectors look at.
DETECT_SIDE = 1024
#: Each box is grown by this fraction of its size on every side before it is blurred.
MARGIN = 0.2
#: Blocks across a blurred box: it is pixelated to this many, then smoothed.
BLOCKS = 4
NAME = "redact-image"
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_loaded: dict[str, Any] = {}


def image_size(data: bytes, item: int) -> tuple[str, int, int]:
    """(format, width, height) from a PNG or JPEG header, without decoding the pixels."""
    where = f"{NAME}: item {item}"
    if data.startswith(_PNG) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data.startswith(_JPEG):
        at = 2
        while at + 9 <= len(data):
            if data[at] != 0xFF:
                break
            marker = data[at + 1]
            if marker == 0xFF:  # fill byte
                at += 1
                continue
            (length,) = struct.unpack(">H", data[at + 2 : at + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
                height, width = struct.unpack(">HH", data[at + 5 : at + 9])
                return "jpeg", width, height
            at += 2 + length
        raise WorkloadError(f"{where} is a JPEG without a readable frame header")
    raise WorkloadError(f"{where} is not a JPEG or PNG image")


def _opencv() -> Any:
    try:
        import cv2
    except ModuleNotFoundError:
        raise WorkloadError(
            f"{NAME} needs OpenCV, which this worker does not have (the node needs pip install 'adytum[vision]')"
        ) from None
    except ImportError as exc:  # installed, but it does not load here (a broken wheel, the memory budget)
        raise WorkloadError(f"{NAME}: this worker's OpenCV does not load ({str(exc)[:200]})") from None
    cv2.setNumThreads(1)  # the enclave's time budget is per order; its cores are the host's to share
    return cv2


def _cascade(cv2: Any, target: str) -> Any:
    if target not in _loaded:
        file, digest = CASCADES[target]
        path = f"{cv2.data.haarcascades}{file}"
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != digest:
                raise WorkloadError(f"{NAME}: this worker's {file} is not the pinned one (opencv-python-headless)")
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise WorkloadError(f"{NAME}: this worker's OpenCV cannot load {file}")
        _loaded[target] = classifier
    return _loaded[target]


def _targets(inputs: list[bytes]) -> tuple[list[str], list[bytes]]:
    """What to find (an optional first text item) and the images."""
    if inputs and not inputs[0].startswith((_PNG, _JPEG)) and len(inputs[0]) <= 64:
        words = inputs[0].decode("ascii", errors="replace").replace(",", " ").split()
        if words and all(word in CASCADES for word in words):
            return sorted(set(words)), inputs[1:]
        raise WorkloadError(f"{NAME}: item 0 is neither an image nor a list of targets ({' '.join(CASCADES)})")
    return ["faces"], inputs


def detect(cv2: Any, image: Any, targets: list[str]) -> dict[str, list[list[int]]]:
    """target -> boxes [x, y, w, h] in the image's pixels, sorted."""
    height, width = image.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(width, height))
    small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    found = {}
    for target in targets:
        boxes = _cascade(cv2, target).detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        found[target] = sorted([round(int(v) / scale) for v in box] for box in boxes)
    return found


def blur(cv2: Any, image: Any, box: list[int]) -> None:
    """Pixelate and smooth one box (grown by MARGIN, clipped to the image) in place."""
    x, y, w, h = box
    grow_x, grow_y = round(w * MARGIN), round(h * MARGIN)
    left, top = max(0, x - grow_x), max(0, y - grow_y)
    right, bottom = min(image.shape[1], x + w + grow_x), min(image.shape[0], y + h + grow_y)
    region = image[top:bottom, left:right]
    if region.size == 0:
        return
    blocks = cv2.resize(region, (BLOCKS, BLOCKS), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(blocks, (right - left, bottom - top), interpolation=cv2.INTER_NEAREST)
    kernel = max(3, (min(right - left, bottom - top) // BLOCKS) | 1)
    image[top:bottom, left:right] = cv2.GaussianBlur(coarse, (kernel, kernel), 0)


class RedactImage(Workload):
    name = NAME
    description = (
        "Blurs the faces (or licence plates) in JPEG/PNG photographs with OpenCV's bundled detectors; "
        "returns the redacted images and a JSON report of the boxes (needs adytum[vision])."
    )

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        targets, images = _targets(inputs)
        if not images:
            raise WorkloadError(f"{NAME}: send at least one JPEG or PNG image")
        offset = len(inputs) - len(images)
        sizes = [image_size(data, offset + i) for i, data in enumerate(images)]
        for i, (_, width, height) in enumerate(sizes):
            if not 0 < width * height <= MAX_PIXELS:
                raise WorkloadError(f"{NAME}: item {offset + i} has more than {MAX_PIXELS:,} pixels")
        if sum(width * height for _, width, height in sizes) > MAX_ORDER_PIXELS:
            raise WorkloadError(f"{NAME}: the images of one order have more than {MAX_ORDER_PIXELS:,} pixels together")
        cv2 = _opencv()
        import numpy

        outputs, report = [], []
        counts = dict.fromkeys(targets, 0)
        for i, (data, (kind, width, height)) in enumerate(zip(images, sizes, strict=True)):
            image = cv2.imdecode(numpy.frombuffer(data, numpy.uint8), cv2.IMREAD_COLOR)
            if image is None or image.shape[:2] != (height, width):
                raise WorkloadError(f"{NAME}: item {offset + i} is a damaged {kind.upper()} image")
            found = detect(cv2, image, targets)
            for target, boxes in found.items():
                counts[target] += len(boxes)
                for box in boxes:
                    blur(cv2, image, box)
            params = [cv2.IMWRITE_JPEG_QUALITY, 90] if kind == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
            ok, encoded = cv2.imencode(".jpg" if kind == "jpeg" else ".png", image, params)
            if not ok:
                raise WorkloadError(f"{NAME}: item {offset + i} could not be encoded again")
            outputs.append(encoded.tobytes())
            report.append({"width": width, "height": height, **found})
        outputs.append(json.dumps({"counts": counts, "images": report}, sort_keys=True).encode())
        return outputs
