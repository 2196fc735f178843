"""The image CLI end to end, with hostile inputs: one-line errors, non-zero exits, no lost data."""
import errno

import numpy as np
import pytest
from PIL import Image

from srgan_fast import upscale
from srgan_fast.checkpoints import save_generator
from srgan_fast.imageio import read_image


@pytest.fixture
def weights(tiny_generator, tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_generator(tiny_generator, path)
    return path


def run(argv, weights, capsys):
    code = upscale.main([*map(str, argv), "--backend", "torch", "--weights", str(weights), "--no-progress"])
    return code, capsys.readouterr().err


def _png(path, arr):
    Image.fromarray(arr).save(path)
    return path


def rng_image(shape, dtype=np.uint8, seed=0):
    hi = 65535 if dtype == np.uint16 else 255
    return np.random.default_rng(seed).integers(0, hi, shape, dtype=dtype)


def test_rgb_image(tmp_path, weights, capsys):
    src = _png(tmp_path / "in.png", rng_image((9, 11, 3)))
    code, err = run([src, tmp_path / "out.png"], weights, capsys)
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (36, 44, 3) and out.dtype == np.uint8
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("mode,shape,dtype", [("L", (7, 6), np.uint8), ("RGBA", (7, 6, 4), np.uint8),
                                              ("LA", (5, 5, 2), np.uint8), ("I;16", (6, 7), np.uint16),
                                              ("RGB16", (6, 5, 3), np.uint16)])
def test_modes_round_trip(tmp_path, weights, capsys, mode, shape, dtype):
    arr = rng_image(shape, dtype)
    src = tmp_path / "in.png"
    if mode == "RGB16":
        import png
        png.Writer(shape[1], shape[0], greyscale=False, bitdepth=16).write(
            open(src, "wb"), arr.reshape(shape[0], -1))
    else:
        Image.fromarray(arr).save(src)
    code, err = run([src, tmp_path / "out.png"], weights, capsys)
    assert code == 0, err
    before, after = read_image(src), read_image(tmp_path / "out.png")
    assert (after.gray, after.bits, after.alpha is None) == (before.gray, before.bits, before.alpha is None)
    assert after.size == (4 * shape[0], 4 * shape[1])
    if before.alpha is not None:  # alpha is upscaled with bicubic, not by the network
        assert abs(float(after.alpha.mean()) - float(before.alpha.mean())) < 0.05


def test_folder_with_a_bad_file(tmp_path, weights, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png", rng_image((8, 8, 3)))
    _png(src / "b.jpg", rng_image((6, 9, 3)))
    (src / "c.png").write_bytes(b"not a png")
    code, err = run([src, tmp_path / "out"], weights, capsys)
    assert code == 1
    assert "c.png" in err and "1 of 3" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.jpg"]
    # A rerun skips what is done and leaves the failures to report again.
    code, err = run([src, tmp_path / "out"], weights, capsys)
    assert code == 1 and "skipping 2" in err


def _one_line_error(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("case", ["zero_byte", "truncated", "not_image", "missing", "same_as_input",
                                  "bad_extension", "huge_declared"])
def test_bad_input_is_one_line(tmp_path, weights, capsys, case):
    src = tmp_path / "in.png"
    out = tmp_path / "out.png"
    if case == "zero_byte":
        src.write_bytes(b"")
    elif case == "truncated":
        _png(src, rng_image((32, 32, 3)))
        src.write_bytes(src.read_bytes()[:200])
    elif case == "not_image":
        src.write_text("hello, I am a text file")
    elif case == "same_as_input":
        _png(src, rng_image((4, 4, 3)))
        out = src
    elif case == "bad_extension":
        _png(src, rng_image((4, 4, 3)))
        out = tmp_path / "out.txt"
    elif case == "huge_declared":
        _png(src, rng_image((1, 1, 3)))
        import zlib
        data = bytearray(src.read_bytes())
        data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width/height: 100000 x 100000
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the chunk valid
        src.write_bytes(bytes(data))
    before = src.read_bytes() if src.exists() else None
    code, err = run([src, out], weights, capsys)
    assert code == 2
    line = _one_line_error(err)
    if case == "huge_declared":
        assert "MP limit" in line
    if before is not None:
        assert src.read_bytes() == before  # the input is never touched
    if out != src:
        assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_existing_output_needs_overwrite(tmp_path, weights, capsys):
    src = _png(tmp_path / "in.png", rng_image((4, 4, 3)))
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    code, err = run([src, out], weights, capsys)
    assert code == 2 and "--overwrite" in _one_line_error(err)
    assert out.read_bytes() == b"keep me"
    code, _ = run([src, out, "--overwrite"], weights, capsys)
    assert code == 0 and Image.open(out).size == (16, 16)


def test_failed_write_leaves_no_partial_file(tmp_path, weights, capsys, monkeypatch):
    src = _png(tmp_path / "in.png", rng_image((4, 4, 3)))

    def broken_save(self, fp, *a, **k):
        open(fp, "wb").write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", broken_save)
    rc = upscale.main([str(src), str(tmp_path / "out.png"), "--backend", "torch", "--weights", str(weights)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and err[-1].startswith("error:") and "no space left" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "out.png").exists()
    assert not list(tmp_path.glob(".*partial*"))
