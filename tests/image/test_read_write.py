"""Every input mode and bit depth x every output format: a correct round trip, or a stated
compromise (composited alpha, fewer bits), checked on the pixel values; EXIF orientation, ICC
profiles and resolution; animated inputs refused in one line."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_fast.image import job as upscale  # the image job the CLI runs
from srgan_fast.errors import SrganError
from srgan_fast.image.read import read_image
from srgan_fast.image.imresize import imresize
from srgan_fast.model import SCALE

from conftest import NearestEngine

OUT_EXTS = [".png", ".jpg", ".webp", ".tif", ".bmp"]
LOSSY = {".jpg", ".webp"}
H, W = 20, 18


def _smooth(channels, hi=255, dtype=np.uint8, seed=0):
    """Smooth gradients (lossy codecs keep them well) with a little structure."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    planes = [(np.sin(x / 5 + k + seed) + np.cos(y / 7 - k)) / 4 + 0.5 for k in range(channels)]
    return (np.stack(planes, -1).squeeze() * hi).round().astype(dtype)


def _alpha():
    y, x = np.mgrid[0:H, 0:W]
    a = np.clip((x - 4) * 40, 0, 255).astype(np.uint8)
    a[:, :3] = 0  # fully transparent columns whose colour must not leak into a JPEG
    return a


def _write_input(tmp_path, mode):
    """An input file of the given kind; returns its path."""
    import png
    import tifffile

    p = tmp_path / f"in_{mode.replace(';', '').replace('+', '_').replace(' ', '_')}"
    rgb = _smooth(3)
    if mode == "1":
        Image.fromarray(_smooth(1) > 128).convert("1").save(p := p.with_suffix(".png"))
    elif mode in ("L", "RGB"):
        Image.fromarray(_smooth(1) if mode == "L" else rgb).save(p := p.with_suffix(".png"))
    elif mode in ("LA", "RGBA"):
        base = _smooth(1)[..., None] if mode == "LA" else rgb
        Image.fromarray(np.dstack([base, _alpha()])).save(p := p.with_suffix(".png"))
    elif mode in ("P", "P+tRNS"):
        im = Image.fromarray(rgb).quantize(16)
        if mode == "P+tRNS":
            im.info["transparency"] = 0
            im.save(p := p.with_suffix(".png"), transparency=0)
        else:
            im.save(p := p.with_suffix(".png"))
    elif mode == "CMYK":
        Image.fromarray(rgb).convert("CMYK").save(p := p.with_suffix(".tif"))
    elif mode == "CMYK jpeg":
        Image.fromarray(rgb).convert("CMYK").save(p := p.with_suffix(".jpg"), quality=95)
    elif mode == "I;16B tiff":
        tifffile.imwrite(p := p.with_suffix(".tif"), _smooth(1, 65535, np.uint16), byteorder=">")
    elif mode == "I;16":
        Image.fromarray(_smooth(1, 65535, np.uint16)).save(p := p.with_suffix(".png"))
    elif mode == "I;16 tiff":
        tifffile.imwrite(p := p.with_suffix(".tif"), _smooth(1, 65535, np.uint16))
    elif mode == "F":
        Image.fromarray(_smooth(1, 1.0, np.float32)).save(p := p.with_suffix(".tif"))
    elif mode in ("RGB16", "RGBA16"):
        arr = _smooth(4 if mode == "RGBA16" else 3, 65535, np.uint16)
        png.Writer(W, H, greyscale=False, alpha=mode == "RGBA16", bitdepth=16).write(
            open(p := p.with_suffix(".png"), "wb"), arr.reshape(H, -1))
    elif mode == "RGB16 tiff":
        tifffile.imwrite(p := p.with_suffix(".tif"), _smooth(3, 65535, np.uint16), photometric="rgb")
    return p


MODES = ["1", "L", "LA", "P", "P+tRNS", "RGB", "RGBA", "CMYK", "CMYK jpeg", "I;16", "I;16 tiff", "I;16B tiff", "F",
         "RGB16", "RGBA16", "RGB16 tiff"]


def _nearest(t):
    return t.repeat_interleave(SCALE, -2).repeat_interleave(SCALE, -1)


@pytest.mark.parametrize("ext", OUT_EXTS)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_to_every_format(tmp_path, mode, ext):
    src = _write_input(tmp_path, mode)
    before = read_image(src)
    assert float(before.rgb.max()) > 0.5 and float(before.rgb.min()) < 0.5  # a real picture
    dst = tmp_path / f"out{ext}"
    notes = upscale.upscale_file(NearestEngine(), src, dst)
    after = read_image(dst)
    assert after.size == (H * SCALE, W * SCALE)

    want = _nearest(before.rgb)
    has_alpha = before.alpha is not None
    alpha = imresize(before.alpha[None], scale=SCALE)[0].float().clamp(0, 1) if has_alpha else None
    if has_alpha and ext in (".jpg", ".bmp"):  # stated: composited on white
        want = want * alpha + (1 - alpha)
        assert any("composited on white" in n for n in notes)
        assert after.alpha is None
    elif has_alpha:
        assert after.alpha is not None
        assert float((after.alpha - alpha).abs().max()) <= 1.5 / 255
    diff = (after.rgb - want).abs()
    if ext in LOSSY:
        assert float(diff.mean()) < 0.02, f"mean error {float(diff.mean()):.4f}"
    else:
        step = 1 / 255 if after.bits == 8 else 1 / 65535
        assert float(diff.max()) <= step / 2 + 1e-6, f"max error {float(diff.max()):.6f}"
    # grey stays grey where the format has grey; depth is kept where the format has it
    if before.gray and ext != ".webp" and not (has_alpha and ext == ".tif" and before.bits > 8):
        assert after.gray
    keeps = {".png": (8, 16), ".tif": (8, 16, 32)}.get(ext, (8,))
    assert after.bits == (before.bits if before.bits in keeps else max(keeps)) or \
        (ext == ".png" and before.bits == 32 and after.bits == 16)
    if before.bits > after.bits:
        assert any("-bit samples" in n for n in notes)


def test_float_tiff_outside_unit_range_is_refused(tmp_path):
    Image.fromarray(np.full((4, 4), 300.0, np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(SrganError, match=r"float samples must lie in \[0, 1\]"):
        read_image(tmp_path / "f.tif")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    """A phone photo stored sideways with an orientation tag comes out upright, without the tag."""
    from PIL import ImageOps

    arr = _smooth(3)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"  # other EXIF fields are kept
    im.save(tmp_path / "in.png", exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "in.png")))  # Pillow's reading
    img = read_image(tmp_path / "in.png")
    assert np.array_equal((img.rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), upright)
    for ext in (".png", ".jpg"):
        upscale.upscale_file(NearestEngine(), tmp_path / "in.png", tmp_path / f"out{ext}")
        with Image.open(tmp_path / f"out{ext}") as out:
            assert out.size == (upright.shape[1] * SCALE, upright.shape[0] * SCALE)
            assert out.getexif().get(0x0112, 1) == 1
            assert out.getexif().get(0x010F) == "PhoneMaker"


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_and_resolution_are_kept(tmp_path, ext):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # any real profile
    Image.fromarray(_smooth(3)).save(tmp_path / "in.png", icc_profile=icc, dpi=(300, 300))
    upscale.upscale_file(NearestEngine(), tmp_path / "in.png", tmp_path / f"out{ext}")
    with Image.open(tmp_path / f"out{ext}") as out:
        assert out.info.get("icc_profile") == icc
        if ext != ".webp":  # WebP has no resolution field
            assert round(float(out.info["dpi"][0])) == 300 * SCALE  # same printed size


def test_bmp_says_it_drops_the_profile(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_smooth(3)).save(tmp_path / "in.png", icc_profile=icc)
    notes = upscale.upscale_file(NearestEngine(), tmp_path / "in.png", tmp_path / "out.bmp")
    assert any("ICC" in n for n in notes)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_inputs_are_refused(tmp_path, fmt):
    frames = [Image.fromarray(_smooth(3, seed=i)) for i in range(3)]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(SrganError, match="animated image"):
        read_image(path)


def test_single_frame_gif_is_read(tmp_path):
    Image.fromarray(_smooth(3)).quantize(64).save(tmp_path / "still.gif")
    assert read_image(tmp_path / "still.gif").size == (H, W)


def test_tiled_alpha_equals_whole_plane(tmp_path):
    """Alpha is upscaled tile by tile (bounded memory) and must equal the whole-plane bicubic."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (37, 41, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "in.png")
    img = read_image(tmp_path / "in.png")
    whole = upscale.render(NearestEngine(), img, upscale.spec_for(tmp_path / "o.png", img), tmp_path / "o.png", tile=0)
    tiled = upscale.render(NearestEngine(), img, upscale.spec_for(tmp_path / "o.png", img), tmp_path / "o.png", tile=7)
    assert np.array_equal(whole, tiled)


def test_png_stream_matches_pillow_pixels():
    """The streamed PNG encoder's files decode (with Pillow) to exactly the array written."""
    from srgan_fast.image.pngstream import write_png

    rng = np.random.default_rng(1)
    for shape, bits in [((70, 33), 8), ((70, 33, 2), 8), ((70, 33, 3), 8), ((70, 33, 4), 8), ((70, 33), 16)]:
        arr = rng.integers(0, 2 ** bits, shape).astype(np.uint16 if bits == 16 else np.uint8)
        for level in (0, 1, 9):
            buf = io.BytesIO()
            write_png(buf, arr, bits, level=level, band=16)
            got = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
            assert np.array_equal(got.astype(arr.dtype), arr), (shape, bits, level)


def test_rgba_to_jpeg_composites_on_white_via_cli(tmp_path, tiny_generator, capsys):
    from srgan_fast.checkpoints import save_generator

    save_generator(tiny_generator, tmp_path / "g.safetensors")
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere, but only the right half is visible
    rgba[:, 10:, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "in.png")
    from srgan_fast.upscale import main

    code = main([str(tmp_path / "in.png"), str(tmp_path / "out.jpg"), "--backend", "torch",
                         "--weights", str(tmp_path / "g.safetensors"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "note: JPEG has no alpha channel: transparent areas composited on white" in err
    out = np.asarray(Image.open(tmp_path / "out.jpg")).astype(int)
    assert out[:, :30].min() > 235  # the transparent half is white, not the red under it
    assert torch.tensor(out[:, 50:]).float().std() > 0  # the visible half is the network's output


@pytest.mark.parametrize("mode", MODES)
def test_bytes_in_memory_read_and_encode_like_files(tmp_path, mode):
    """read_image_bytes gives what read_image gives, and encode_canvas the bytes write_canvas
    writes (the service's in-memory path applies the CLI's rules)."""
    from srgan_fast.image.read import read_image_bytes
    from srgan_fast.image.write import encode_canvas, new_canvas, fill, output_spec, write_canvas

    src = _write_input(tmp_path, mode)
    a, b = read_image(src), read_image_bytes(src.read_bytes(), "upload")
    assert torch.equal(a.rgb, b.rgb) and (a.alpha is None) == (b.alpha is None)
    assert (a.alpha is None or torch.equal(a.alpha, b.alpha)) and (a.gray, a.bits) == (b.gray, b.bits)
    for ext in (".png", ".tif", ".jpg"):
        spec = output_spec(tmp_path / f"o{ext}", b.gray, b.alpha is not None, b.bits, icc=bool(b.meta.icc))
        canvas = new_canvas(spec, *b.size)
        fill(canvas, spec, 0, 0, b.rgb, b.alpha)
        write_canvas(tmp_path / f"o{ext}", canvas, spec, b.meta)
        assert encode_canvas(ext, canvas, spec, b.meta) == (tmp_path / f"o{ext}").read_bytes()


def test_bytes_reader_keeps_exif_orientation_and_refuses_what_files_refuse(tmp_path):
    from srgan_fast.image.read import TooManyPixels, image_header, read_image_bytes

    im = Image.fromarray(_smooth(3))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif)
    img = read_image_bytes(buf.getvalue())
    assert img.size == (W, H)  # upright: the sides swap
    assert image_header(buf.getvalue()) == ("JPEG", W, H)  # the header's own, nothing decoded
    with pytest.raises(TooManyPixels, match="over the 100-pixel limit"):
        read_image_bytes(buf.getvalue(), "up.jpg", max_pixels=100)
    with pytest.raises(SrganError, match="upload: empty"):
        read_image_bytes(b"")
    ico = io.BytesIO()
    im.save(ico, format="ICO")  # Pillow reads it, the service does not take it
    with pytest.raises(SrganError, match="not a readable image"):
        read_image_bytes(ico.getvalue())
    with pytest.raises(SrganError, match="not a readable image"):
        image_header(ico.getvalue())
