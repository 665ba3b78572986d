"""A photograph of several MB through the real node (HTTP, store, enclave process and channel) and
`adytum submit --in-file/--out-file`; above the body limit, a clear EEA error."""

from __future__ import annotations

import json

import cv2
import numpy
import pytest

from adytum.client import Client
from adytum.config import NodeConfig
from adytum.protocol import EeaError, Status
from test_cli import adytum
from workloads.test_redact_image import ASTRONAUT_FACE, decode, faces_in, jpeg, overlap
from workloads.test_redact_image import photo as sample


@pytest.fixture(scope="module")
def big_photo() -> bytes:
    """The astronaut at 3600 x 3600 with sensor-like noise: a 4.6 MB JPEG, 6.2 MB once in base64."""
    astronaut = decode(sample("astronaut.png"))
    big = cv2.resize(astronaut, (3600, 3600), interpolation=cv2.INTER_CUBIC)
    noise = numpy.random.default_rng(7).normal(0, 6, big.shape)
    return jpeg(numpy.clip(big + noise, 0, 255).astype(numpy.uint8))


def test_a_photograph_of_several_mb_is_redacted_by_the_node(node, big_photo):
    assert len(big_photo) > 4 * 1024 * 1024
    with Client(node.url, trust=node.trust) as client:
        redacted, report = client.run("redact-image", [big_photo], timeout=120)
    faces = json.loads(report)["images"][0]["faces"]
    scaled = [round(v * 3600 / 512) for v in ASTRONAUT_FACE]
    assert max(overlap(face, scaled) for face in faces) > 0.8
    assert decode(redacted).shape == (3600, 3600, 3) and redacted.startswith(b"\xff\xd8\xff")


def test_a_request_above_the_body_limit_gets_a_clear_eea_error(node):
    limit = NodeConfig.of(node.node.config.data_dir).max_body
    too_big = numpy.random.default_rng(1).bytes(limit * 3 // 4 + 1024)  # its base64 alone passes the limit
    with Client(node.url, trust=node.trust) as client, pytest.raises(EeaError) as refused:
        client.run("redact-image", [too_big])
    assert refused.value.code == Status.INVALID_PARAMETER
    assert f"exceeds the {limit}-byte limit" in refused.value.message
    with Client(node.url, trust=node.trust) as client:  # and the node serves on
        assert client.run("hello", [b"again"]) == [b"Hello again"]


def test_submit_reads_a_photo_and_writes_the_redacted_one(node, tmp_path):
    photo, out = tmp_path / "photo.png", tmp_path / "redacted.png"
    photo.write_bytes(sample("astronaut.png"))
    redact = ("submit", "--uri", node.url, "--trust-root", str(node.root_pem), "--workload", "redact-image")
    done = adytum(*redact, "--in-file", str(photo), "--out-file", str(out), "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ok"] and answer["verified"] and answer["simulated"] is True
    assert answer["written"] == [str(out)]
    (report,) = answer["outputs"]
    assert json.loads(report)["images"][0]["faces"] == [ASTRONAUT_FACE]
    assert faces_in(out.read_bytes()) == []

    printed = adytum(*redact, "--in-file", str(photo))
    assert printed.returncode == 0 and "bytes that are not text: write them to a file with --out-file" in printed.stdout
    assert json.loads(printed.stdout.splitlines()[-1])["counts"] == {"faces": 1}

    nothing = adytum(*redact, "--json")
    assert nothing.returncode == 1 and "at least one input item" in json.loads(nothing.stdout)["error"]

    missing = adytum(*redact, "--in-file", str(tmp_path / "nope"))
    said = " ".join(missing.stderr.split())
    assert missing.returncode == 1 and "--in-file" in said and "No such file" in said and "Traceback" not in said
