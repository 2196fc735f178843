"""The ingress's checks on their own (no Ray): options, uploads, headers."""
import asyncio

import pytest

from serve_helpers import noise, png_bytes

from srgan_fast.serve.http_errors import ServiceError
from srgan_fast.serve.limits import Limits
from srgan_fast.serve.validate import check_image, parse_options, read_upload

LIMITS = Limits(max_body=4096, max_pixels=1000, timeout_s=30)
MODELS = ("srresnet", "srgan")


def options(**query):
    return parse_options(query, MODELS, "srgan", LIMITS)


def status(fn, *args, **kw):
    with pytest.raises(ServiceError) as e:
        fn(*args, **kw)
    return e.value.status, e.value.message


def test_options_defaults_and_checks():
    o = options()
    assert (o.ext, o.model, o.tile, o.detail, o.timeout_s) == (None, "srgan", None, None, 30)
    assert options(format="JPEG", model="srresnet", tile="0").ext == ".jpg"
    assert options(timeout="5").timeout_s == 5 and options(timeout="999").timeout_s == 30  # capped
    assert status(options, tile="-1")[0] == 400
    assert status(options, timeout="nan")[0] == 400
    assert "finite" in status(options, detail="inf")[1]


def test_detail_takes_the_offered_levels_of_srgan_only():
    from srgan_fast.serve.limits import EngineRecipe

    recipe = EngineRecipe(models=MODELS, details=(0, 0.25, 1), default_detail=0.25)
    levels = recipe.detail_info()
    assert levels == {"min": 0.0, "max": 1.0, "default": 0.25, "levels": [0.0, 0.25, 1.0], "model": "srgan"}
    assert parse_options({"detail": "0.25"}, MODELS, "srgan", LIMITS, levels).detail == 0.25
    assert parse_options({}, MODELS, "srgan", LIMITS, levels).detail is None
    for bad in ("1.5", "0.5"):  # outside, or between the levels (each level is an engine)
        with pytest.raises(ServiceError, match=r"one of the levels this service offers \(0, 0.25, 1\)"):
            parse_options({"detail": bad}, MODELS, "srgan", LIMITS, levels)
    with pytest.raises(ServiceError, match="model=srresnet takes no detail"):
        parse_options({"detail": "1", "model": "srresnet"}, MODELS, "srgan", LIMITS, levels)
    # engines: one per level, srgan at the default when a request names none
    assert recipe.variants() == ["srresnet", "srgan@0", "srgan@0.25", "srgan@1"]
    assert recipe.variant("srgan") == "srgan@0.25" and recipe.variant("srresnet") == "srresnet"
    assert EngineRecipe(models=("srresnet",), details=(0.5,)).detail_info() is None


def test_check_image_statuses():
    assert check_image(png_bytes(noise(20, 30)), LIMITS) == ("PNG", 30, 20)
    assert status(check_image, png_bytes(noise(40, 40)), LIMITS)[0] == 413     # 1600 > 1000 pixels
    assert status(check_image, b"GIF89a\x01", LIMITS)[0] == 400                 # a GIF, broken
    assert status(check_image, b"RIFF\x00\x00\x00\x00WEBPVP8 ", LIMITS)[0] == 400  # a WebP, broken
    assert status(check_image, b"\x00\x01 arbitrary bytes", LIMITS)[0] == 415


class FakeRequest:
    """What read_upload uses of a Starlette request: headers and the body stream."""

    def __init__(self, body: bytes, content_type: str | None, length: bool = True, chunk: int = 1000):
        self.headers = {}
        if content_type is not None:
            self.headers["content-type"] = content_type
        if length:
            self.headers["content-length"] = str(len(body))
        self.body, self.chunk = body, chunk

    async def stream(self):
        for i in range(0, len(self.body), self.chunk):
            yield self.body[i:i + self.chunk]


def upload(body, content_type="application/octet-stream", **kw):
    return asyncio.run(read_upload(FakeRequest(body, content_type, **kw), LIMITS))


def form(*parts, boundary="XyZ"):
    body = b""
    for headers, data in parts:
        body += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_raw_and_form_uploads():
    assert upload(b"abc") == b"abc"
    assert upload(b"abc", None) == b"abc"  # no content type: the bytes
    body, kind = form(('Content-Disposition: form-data; name="model"', b"srgan"),
                      ('Content-Disposition: form-data; name="file"; filename="a.png"', b"PIXELS"))
    assert upload(body, kind, chunk=7) == b"PIXELS"
    body, kind = form(('Content-Disposition: form-data; name="upload"; filename="a.png"', b"ONLY"))
    assert upload(body, kind) == b"ONLY"  # the one file part, whatever its name


def test_bad_uploads():
    def fails(*args, **kw):
        with pytest.raises(ServiceError) as e:
            upload(*args, **kw)
        return e.value.status, e.value.message

    assert fails(b"x" * 5000)[0] == 413                          # declared length
    assert fails(b"x" * 5000, length=False)[0] == 413            # counted while reading
    assert fails(b"x", "text/plain")[0] == 415
    two, kind = form(('Content-Disposition: form-data; name="a"; filename="1.png"', b"1"),
                     ('Content-Disposition: form-data; name="b"; filename="2.png"', b"2"))
    assert "field named 'file'" in fails(two, kind)[1]
    body, kind = form(('Content-Disposition: form-data; name="file"; filename="a.png"', b"DATA"))
    assert "incomplete" in fails(body[:-10], kind)[1]
    assert "boundary" in fails(b"--x--", "multipart/form-data")[1]
    many, kind = form(*[(f'Content-Disposition: form-data; name="f{i}"', b"v") for i in range(9)])
    assert "at most 8 parts" in fails(many, kind)[1]


def test_invalid_content_length_is_400():
    request = FakeRequest(b"abc", "image/png")
    request.headers["content-length"] = "12abc"
    with pytest.raises(ServiceError, match="invalid Content-Length"):
        asyncio.run(read_upload(request, LIMITS))


def test_detail_levels_with_the_same_weights_share_one_engine():
    from srgan_fast.serve.limits import EngineRecipe

    recipe = EngineRecipe(backend="torch", models=("srresnet", "srgan"), details=(0, 1), default_detail=1)
    specs = {v: recipe.spec(v) for v in recipe.variants()}
    assert specs["srgan@0"] == specs["srresnet"] and specs["srgan@1"] != specs["srresnet"]
    assert len(set(specs.values())) == 2
