"""The HTTP API against a running service (one app for the module, 4x nearest-neighbour engines so
every output can be checked against the CLI's own path, byte for byte)."""
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from fakes import Nearest
from serve_helpers import make_recipe, noise, png_bytes, running_app

from srgan_fast.image.job import upscale_file
from srgan_fast.image.read import read_image
from srgan_fast.serve.limits import Limits

MAX_BODY = 256 * 1024
# A memory budget (for the engine's 12 KiB per LR pixel) that batches up to 1535-pixel inputs,
# tiles 100x70 ones (largest tile 73) and allows tile=64.
LIMITS = Limits(max_body=MAX_BODY, max_pixels=200 * 200, timeout_s=60, max_ongoing=4, max_queued=8,
                memory_budget=190 * 2**20)


@pytest.fixture(scope="module")
def url(serve_port):
    with running_app(serve_port, "api", make_recipe(), LIMITS) as base:
        yield base


def post(url, data, query="", **kw):
    return requests.post(url + "v1/upscale" + query, data=data, timeout=60, **kw)


def cli_output(tmp_path, data: bytes, name: str, out: str) -> bytes:
    """What ``python -m srgan_fast.upscale name out`` writes with the same engine."""
    src, dst = tmp_path / name, tmp_path / out
    src.write_bytes(data)
    upscale_file(Nearest(), src, dst)
    return dst.read_bytes()


def error_of(r, status):
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"]
    return body["error"]


def test_healthz_and_info(url):
    assert requests.get(url + "healthz", timeout=30).json() == {"status": "ok"}
    info = requests.get(url + "v1/info", timeout=30).json()
    assert info["models"] == ["nearest", "dark"] and info["default_model"] == "nearest"
    assert info["limits"]["max_body_bytes"] == MAX_BODY and info["detail"] is None


@pytest.mark.parametrize("size", [(16, 16), (100, 70)], ids=["batched", "tiled"])
def test_png_raw_body_is_the_cli_output(url, tmp_path, size):
    data = png_bytes(noise(*size))
    r = post(url, data, headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert (int(r.headers["x-width"]), int(r.headers["x-height"])) == (size[1] * 4, size[0] * 4)
    assert r.content == cli_output(tmp_path, data, "in.png", "out.png")


def test_multipart_upload_like_curl_F(url, tmp_path):
    data = png_bytes(noise(20, 24, seed=1))
    r = requests.post(url + "v1/upscale", files={"file": ("photo.png", data, "image/png")},
                      data={"note": "ignored"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.content == cli_output(tmp_path, data, "in.png", "out.png")


def test_curl_data_binary_default_content_type(url):
    """curl --data-binary sends application/x-www-form-urlencoded: still the image bytes."""
    r = post(url, png_bytes(noise(16, 16)), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (64, 64)


def test_jpeg_in_jpeg_out_and_webp_output(url, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(noise(24, 32, seed=2)).save(buf, format="JPEG", quality=90)
    r = post(url, buf.getvalue())
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == cli_output(tmp_path, buf.getvalue(), "in.jpg", "out.jpg")
    r = post(url, buf.getvalue(), "?format=webp")
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert r.content == cli_output(tmp_path, buf.getvalue(), "in.jpg", "out.webp")


def test_alpha_kept_in_png_and_composited_with_a_note_in_jpeg(url, tmp_path):
    rgba = noise(20, 20, channels=4, seed=3)
    data = png_bytes(rgba)
    r = post(url, data)
    assert r.status_code == 200
    assert Image.open(io.BytesIO(r.content)).mode == "RGBA"
    assert r.content == cli_output(tmp_path, data, "in.png", "out.png")
    r = post(url, data, "?format=jpg")
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).mode == "RGB"
    assert "composited on white" in r.headers["x-notes"]


def test_16_bit_png_stays_16_bit(url, tmp_path):
    import png

    arr = ((np.arange(18 * 18 * 3, dtype=np.uint32) * 997) % 65536).astype(np.uint16).reshape(18, 18 * 3)
    buf = io.BytesIO()
    png.Writer(18, 18, greyscale=False, bitdepth=16).write(buf, arr)
    r = post(url, buf.getvalue())
    assert r.status_code == 200
    out = tmp_path / "served.png"
    out.write_bytes(r.content)
    img = read_image(out)
    assert img.bits == 16 and img.size == (72, 72)
    assert r.content == cli_output(tmp_path, buf.getvalue(), "in16.png", "out16.png")


def test_grey_icc_and_dpi_kept(url, tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(noise(16, 16, channels=1)).save(buf, format="PNG", icc_profile=icc, dpi=(72, 72))
    r = post(url, buf.getvalue())
    assert r.status_code == 200
    out = Image.open(io.BytesIO(r.content))
    assert out.mode == "L" and out.info.get("icc_profile") == icc
    assert [round(d) for d in out.info["dpi"]] == [288, 288]


def test_model_parameter_selects_the_engine(url):
    data = png_bytes(np.full((16, 16, 3), 200, np.uint8))
    bright = np.asarray(Image.open(io.BytesIO(post(url, data).content)))
    dark = np.asarray(Image.open(io.BytesIO(post(url, data, "?model=dark").content)))
    assert bright.mean() == 200 and dark.mean() == 100


def test_tile_parameter_same_image(url):
    data = png_bytes(noise(100, 70, seed=4))
    assert post(url, data, "?tile=64").content == post(url, data).content
    assert "at least 64" in error_of(post(url, data, "?tile=8"), 400)


@pytest.mark.parametrize("query, says", [
    ("?format=gif", "format 'gif'"), ("?model=srgan9", "unknown model"), ("?tile=abc", "tile"),
    ("?speed=11", "unknown query parameter 'speed'"), ("?detail=0.5", "model=nearest takes no detail"),
    ("?timeout=-1", "timeout")])
def test_bad_options_are_400(url, query, says):
    assert says in error_of(post(url, png_bytes(noise(16, 16)), query), 400)


def test_truncated_and_empty_images_are_400(url):
    data = png_bytes(noise(60, 60, seed=5))
    assert "truncated" in error_of(post(url, data[: len(data) // 2]), 400)
    assert "not a readable image" in error_of(post(url, data[:30]), 400)  # header cut short
    assert "empty body" in error_of(post(url, b""), 400)


def test_form_without_a_file_field_is_400(url):
    r = requests.post(url + "v1/upscale", files={"text": (None, "hello")}, timeout=60)
    assert "field named 'file'" in error_of(r, 400)


def test_body_over_the_limit_is_413_declared_or_streamed(url):
    big = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BODY)
    assert "limit" in error_of(post(url, big), 413)  # Content-Length refused before reading

    def chunks():  # no Content-Length: counted while reading
        for _ in range(MAX_BODY // 8192 + 2):
            yield bytes(8192)
    assert "limit" in error_of(post(url, chunks()), 413)


def test_decompression_bomb_refused_from_its_header(url):
    """A 50000x50000 PNG of a few hundred bytes: refused from the header, never decoded."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1 << 16), 9)) + chunk(b"IEND", b""))
    assert len(bomb) < 1000
    says = error_of(post(url, bomb), 413)
    assert "2,500,000,000 pixels" in says and "before decoding" in says
    small_bomb = bomb.replace(struct.pack(">II", 50000, 50000), struct.pack(">II", 1000, 1000))
    small_bomb = small_bomb.replace(small_bomb[29:33], struct.pack(">I", zlib.crc32(small_bomb[12:29])))
    says = error_of(post(url, small_bomb), 413)  # over the service's own limit, under Pillow's
    assert "1000x1000 = 1,000,000 pixels" in says and "before decoding" in says


def test_wrong_content_type_and_unknown_bytes_are_415(url):
    assert "not an image" in error_of(post(url, b"hello", headers={"Content-Type": "text/plain"}), 415)
    assert "not an image" in error_of(post(url, json.dumps({"a": 1}), headers={"Content-Type": "application/json"}), 415)
    assert "not an image format" in error_of(post(url, b"%PDF-1.7 not an image at all"), 415)


def test_unknown_route_and_method_are_json(url):
    assert error_of(requests.get(url + "nothing", timeout=30), 404)
    assert error_of(requests.get(url + "v1/upscale", timeout=30), 405)


def test_openapi_documents_both_upload_kinds_and_errors(url):
    spec = requests.get(url + "openapi.json", timeout=30).json()
    op = spec["paths"]["/v1/upscale"]["post"]
    assert {"multipart/form-data", "image/png", "application/octet-stream"} <= set(op["requestBody"]["content"])
    assert {"200", "400", "413", "415", "503", "504"} <= set(op["responses"])
    assert {p["name"] for p in op["parameters"]} == {"format", "model", "tile", "detail", "timeout"}
    assert "/healthz" in spec["paths"]


def test_the_page_and_its_files_are_served(url):
    page = requests.get(url, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="app.js"' in page.text and "http" not in page.text.split("<body>")[1]  # nothing external
    assert "v1/upscale" in requests.get(url + "app.js", timeout=30).text
    assert requests.get(url + "style.css", timeout=30).headers["content-type"].startswith("text/css")


def test_small_images_are_batched_and_large_ones_tiled(url):
    from ray import serve

    stats = serve.get_deployment_handle("Upscaler", app_name="api").stats
    before = stats.remote().result()
    assert post(url, png_bytes(noise(16, 16))).status_code == 200
    after_small = stats.remote().result()
    assert sum(after_small["batch_sizes"].values()) == sum(before["batch_sizes"].values()) + 1
    assert post(url, png_bytes(noise(100, 70)), "?tile=64").status_code == 200  # 2x2 tiles
    after_large = stats.remote().result()
    assert after_large["batch_sizes"] == after_small["batch_sizes"]
    calls = lambda s: sum(s["engine_batches"].values())  # noqa: E731
    assert calls(after_large) == calls(after_small) + 4
