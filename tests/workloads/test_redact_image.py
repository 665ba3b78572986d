"""`redact-image` on real photographs from scikit-image's wheel (skimage/data/*.png, *.jpg: no download),
with OpenCV's own bundled cascades, and on synthetic images with nothing to find."""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy
import pytest
import skimage.data

from adytum.workloads import redact_image
from adytum.workloads.redact_image import MAX_PIXELS, RedactImage

from .conftest import Worker

PHOTOS = Path(skimage.data.__file__).parent
#: The astronaut's face (Eileen Collins, NASA): the one face in skimage's astronaut.png, [x, y, w, h].
ASTRONAUT_FACE = [177, 67, 93, 93]


def photo(name: str) -> bytes:
    path = PHOTOS / name
    assert path.is_file(), f"{path}: scikit-image ships its sample photographs inside the wheel"
    return path.read_bytes()


def decode(data: bytes) -> numpy.ndarray:
    image = cv2.imdecode(numpy.frombuffer(data, numpy.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def jpeg(image: numpy.ndarray, quality: int = 95) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def overlap(a: list[int], b: list[int]) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    width = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def faces_in(image: bytes) -> list[list[int]]:
    """What the workload's own face detector finds in an image, through the workload."""
    return json.loads(Worker(RedactImage()).run([image])[-1])["images"][0]["faces"]


@pytest.fixture
def worker() -> Worker:
    return Worker(RedactImage())


def test_the_astronauts_face_is_found_and_blurred_and_nothing_else_changes(worker):
    original = photo("astronaut.png")
    redacted, report = worker.run([original])
    assert json.loads(report) == {
        "counts": {"faces": 1},
        "images": [{"faces": [ASTRONAUT_FACE], "height": 512, "width": 512}],
    }
    assert redacted.startswith(b"\x89PNG")
    before, after = decode(original), decode(redacted)
    x, y, w, h = ASTRONAUT_FACE
    m = round(w * redact_image.MARGIN)
    outside = numpy.ones(before.shape[:2], bool)
    outside[y - m : y + h + m, x - m : x + w + m] = False
    assert (before[outside] == after[outside]).all()  # PNG is lossless: only the box changed
    face_before = before[y : y + h, x : x + w].astype(float)
    face_after = after[y : y + h, x : x + w].astype(float)
    assert numpy.abs(face_before - face_after).mean() > 10
    assert cv2.Laplacian(face_after, cv2.CV_64F).var() < cv2.Laplacian(face_before, cv2.CV_64F).var() / 20
    assert faces_in(redacted) == []  # the detector no longer finds a face there


def test_a_jpeg_comes_back_as_a_jpeg_without_its_metadata(worker):
    astronaut = decode(photo("astronaut.png"))
    plain = jpeg(astronaut)
    payload = b"Exif\0\0GPS 59.3293N 18.0686E"
    exif = b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload
    with_gps = plain[:2] + exif + plain[2:]
    redacted, report = worker.run([with_gps])
    (found,) = json.loads(report)["images"][0]["faces"]
    assert overlap(found, ASTRONAUT_FACE) > 0.8
    assert redacted.startswith(b"\xff\xd8\xff") and b"GPS" not in redacted and b"Exif" not in redacted
    assert faces_in(redacted) == []


def test_photographs_without_faces_or_plates_come_back_with_nothing_found(worker):
    for name in ("coffee.png", "rocket.jpg", "brick.png"):
        *_, report = worker.run(["faces plates", photo(name)])
        assert json.loads(report)["counts"] == {"faces": 0, "plates": 0}, name


def test_a_synthetic_image_is_returned_unchanged(worker):
    rng = numpy.random.default_rng(18)
    gradient = numpy.linspace(0, 255, 640, dtype=numpy.float64)[None, :, None] * numpy.ones((480, 1, 3))
    image = numpy.clip(gradient + rng.normal(0, 20, gradient.shape), 0, 255).astype(numpy.uint8)
    ok, png = cv2.imencode(".png", image)
    redacted, report = worker.run(["plates, faces", png.tobytes()])
    assert json.loads(report) == {
        "counts": {"faces": 0, "plates": 0},
        "images": [{"faces": [], "height": 480, "plates": [], "width": 640}],
    }
    assert (decode(redacted) == image).all()


def test_a_drawn_licence_plate_is_found_and_blurred(worker):
    """No package here ships a photograph of a car, so the plate is drawn: a white plate, black digits."""
    image = numpy.full((480, 640, 3), 90, numpy.uint8)
    plate = [234, 300, 173, 37]
    x, y, w, h = plate
    cv2.rectangle(image, (x, y), (x + w, y + h), (255, 255, 255), -1)
    cv2.rectangle(image, (x, y), (x + w, y + h), (0, 0, 0), 2)
    cv2.putText(image, "A123BC", (x + 8, y + 29), cv2.FONT_HERSHEY_SIMPLEX, h / 40, (0, 0, 0), 2)
    cv2.putText(image, "77", (x + 138, y + 22), cv2.FONT_HERSHEY_SIMPLEX, h / 80, (0, 0, 0), 2)
    ok, png = cv2.imencode(".png", image)
    redacted, report = worker.run(["plates", png.tobytes()])
    (found,) = json.loads(report)["images"][0]["plates"]
    assert overlap(found, plate) > 0.4
    assert json.loads(worker.run(["plates", redacted])[-1])["counts"] == {"plates": 0}


def test_several_images_one_report_in_their_order(worker):
    outputs = worker.run([photo("coffee.png"), photo("astronaut.png")])
    assert len(outputs) == 3
    report = json.loads(outputs[2])
    assert report["counts"] == {"faces": 1}
    assert [len(i["faces"]) for i in report["images"]] == [0, 1]
    assert [(i["width"], i["height"]) for i in report["images"]] == [(600, 400), (512, 512)]


def test_a_photograph_of_several_megabytes_is_searched_at_a_bounded_size(worker):
    """3600 x 3600 (a 13-megapixel JPEG of about 4.6 MB): the face is found where it is in the original."""
    astronaut = decode(photo("astronaut.png"))
    big = cv2.resize(astronaut, (3600, 3600), interpolation=cv2.INTER_CUBIC)
    noise = numpy.random.default_rng(7).normal(0, 6, big.shape)
    data = jpeg(numpy.clip(big + noise, 0, 255).astype(numpy.uint8))
    assert len(data) > 4 * 1024 * 1024
    redacted, report = worker.run([data])
    faces = json.loads(report)["images"][0]["faces"]
    scaled = [round(v * 3600 / 512) for v in ASTRONAUT_FACE]
    assert max(overlap(face, scaled) for face in faces) > 0.8
    assert decode(redacted).shape == (3600, 3600, 3)


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def test_bad_input_is_refused_by_item_and_rule(worker):
    astronaut = photo("astronaut.png")
    cases = [
        ([], "at least one"),
        (["faces"], "at least one"),
        ([b"GIF89a..."], "item 0 is neither an image nor a list of targets"),
        (["cats", astronaut], "item 0 is neither an image nor a list of targets"),
        ([astronaut, b"%PDF-1.7 not a photo" * 10], "item 1 is not a JPEG or PNG image"),
        ([astronaut[: len(astronaut) // 2]], "item 0 is a damaged PNG image"),
        ([b"\xff\xd8\xff\xe0\x00\x10JFIF"], "item 0 is a JPEG without a readable frame header"),
        (["plates", _png_header(100_000, 100_000) + b"\0" * 100], f"item 1 has more than {MAX_PIXELS:,} pixels"),
        ([_png_header(0, 10)], f"item 0 has more than {MAX_PIXELS:,} pixels"),
        ([_png_header(6000, 6000)] * 3, "more than 100,000,000 pixels together"),
    ]
    for inputs, words in cases:
        assert words in worker.refused(inputs), inputs[:1]


def test_without_opencv_it_says_what_to_install(worker, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now fails as on a worker without the extra
    assert "pip install 'adytum[vision]'" in worker.refused([photo("astronaut.png")])


def test_a_cascade_other_than_the_pinned_one_is_refused(worker, monkeypatch, tmp_path):
    file, _ = redact_image.CASCADES["faces"]
    original = (Path(cv2.data.haarcascades) / file).read_bytes()
    (tmp_path / file).write_bytes(original.replace(b"<stageNum>", b"<stageNum> ", 1))
    monkeypatch.setattr(cv2.data, "haarcascades", f"{tmp_path}/")
    monkeypatch.setattr(redact_image, "_loaded", {})
    assert f"{file} is not the pinned one" in worker.refused([photo("astronaut.png")])


def test_an_opencv_that_does_not_load_is_named(worker, monkeypatch, tmp_path):
    broken = tmp_path / "cv2"
    broken.mkdir()
    (broken / "__init__.py").write_text('raise ImportError("libopencv_core.so: cannot map segment")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cv2")  # restored after the test
    message = worker.refused([photo("astronaut.png")])
    assert "OpenCV does not load (libopencv_core.so: cannot map segment)" in message
