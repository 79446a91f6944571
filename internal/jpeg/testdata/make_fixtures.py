"""Writes ../fixtures_test.go: small JPEGs that Go's image/jpeg encoder cannot make (4:4:4, 4:2:2,
progressive, restart intervals, optimised Huffman tables, Adobe RGB, CMYK, odd sizes), made with Pillow,
and a few sampling layouts that Pillow cannot write either (4:4:0, 4:1:1, mixed factors), made by the
small baseline encoder below with Pillow's tables. With each file goes what Pillow decodes it to,
Image.open(f).convert("RGB"): the SHA-256 of the RGB bytes and a few pixels, the reference of the exact
mode.

Run once, from this directory, with the Pillow the fixtures name (13.0.0, with libjpeg-turbo 3.2.0):

    python3 make_fixtures.py > ../fixtures_test.go && gofmt -w ../fixtures_test.go

The images are photo-like (gradients, texture, noise) from a fixed seed, so the output is the same on
every run with the same Pillow and libjpeg.
"""

import base64
import hashlib
import io

import numpy as np
import PIL
from PIL import Image, features


def photo(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 60 + 150 * x / w + 20 * np.sin(x * 0.7 + y * 0.3)
    g = 40 + 120 * y / h + 15 * np.sin(y * 0.9 + x * 0.2)
    b = 180 - 100 * x * y / (w * h) + 10 * np.cos(x * 0.5)
    img = np.stack([r, g, b], -1) + rng.normal(0, 8, (h, w, 1)) + rng.normal(0, 3, (h, w, 3))
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8))


FIXTURES = [
    # name, size, seed, mode, save options, comment
    ("fixture444", (37, 29), 1, "RGB", dict(quality=90, subsampling=0), "baseline 4:4:4, quality 90"),
    ("fixture422", (37, 29), 2, "RGB", dict(quality=85, subsampling=1), "baseline 4:2:2, quality 85"),
    ("fixture420Restart", (37, 29), 3, "RGB", dict(quality=75, subsampling=2, restart_marker_blocks=3),
     "baseline 4:2:0, quality 75, a restart marker every 3 MCUs"),
    ("fixture420", (37, 29), 3, "RGB", dict(quality=75, subsampling=2), "fixture420Restart without restarts"),
    ("fixture444Restart", (37, 29), 4, "RGB", dict(quality=95, subsampling=0, restart_marker_rows=1),
     "baseline 4:4:4, quality 95, a restart marker every MCU row"),
    ("fixture444q95", (37, 29), 4, "RGB", dict(quality=95, subsampling=0), "fixture444Restart without restarts"),
    ("fixtureOptimized", (37, 29), 5, "RGB", dict(quality=97, subsampling=2, optimize=True),
     "baseline 4:2:0, quality 97, optimised Huffman tables"),
    ("fixtureProgressive420", (64, 48), 6, "RGB", dict(quality=90, subsampling=2, progressive=True),
     "progressive 4:2:0, quality 90 (libjpeg's default script: spectral selection and successive approximation)"),
    ("fixtureProgressive444", (37, 29), 7, "RGB", dict(quality=95, subsampling=0, progressive=True),
     "progressive 4:4:4, quality 95"),
    ("fixtureProgressive422Restart", (37, 29), 8, "RGB",
     dict(quality=80, subsampling=1, progressive=True, restart_marker_blocks=2),
     "progressive 4:2:2, quality 80, a restart marker every 2 MCUs (EOB runs cut at each); image/jpeg rejects it"),
    ("fixtureProgressive422", (37, 29), 8, "RGB", dict(quality=80, subsampling=1, progressive=True),
     "fixtureProgressive422Restart without restarts"),
    ("fixtureProgressiveGray", (33, 17), 9, "L", dict(quality=90, progressive=True), "progressive grey, quality 90"),
    ("fixtureProgressiveGrayRestart", (33, 17), 10, "L", dict(quality=60, progressive=True, restart_marker_rows=1),
     "progressive grey, quality 60, a restart marker every MCU row"),
    ("fixtureProgressiveGrayQ60", (33, 17), 10, "L", dict(quality=60, progressive=True),
     "fixtureProgressiveGrayRestart without restarts"),
    ("fixtureAdobeRGB", (21, 13), 11, "RGB", dict(quality=90, subsampling=0, keep_rgb=True),
     "RGB components with an Adobe marker saying no colour transform, quality 90"),
    ("fixtureCMYK", (21, 13), 12, "CMYK", dict(quality=90), "CMYK with an Adobe marker, quality 90"),
    ("fixtureCMYKProgressive", (37, 29), 13, "CMYK", dict(quality=85, progressive=True),
     "progressive CMYK with an Adobe marker, quality 85"),
    ("fixture420Tall", (23, 71), 14, "RGB", dict(quality=85, subsampling=2, restart_marker_rows=2),
     "baseline 4:2:0, quality 85, five MCU rows, a restart marker every 2 MCU rows"),
    ("fixture422Odd", (35, 21), 15, "RGB", dict(quality=90, subsampling=1), "baseline 4:2:2, quality 90"),
    ("fixtureProgressive420Odd", (45, 31), 16, "RGB", dict(quality=75, subsampling=2, progressive=True),
     "progressive 4:2:0, quality 75"),
    ("fixture420Width5", (5, 3), 17, "RGB", dict(quality=90, subsampling=2),
     "baseline 4:2:0, quality 90: chroma 3 samples wide, the narrowest that libjpeg interpolates"),
    ("fixture420Width3", (3, 9), 18, "RGB", dict(quality=90, subsampling=2),
     "baseline 4:2:0, quality 90: chroma 2 samples wide, which libjpeg replicates"),
    ("fixture422Width4", (4, 7), 19, "RGB", dict(quality=90, subsampling=1),
     "baseline 4:2:2, quality 90: chroma 2 samples wide, which libjpeg replicates"),
    ("fixture420Pixel", (1, 1), 20, "RGB", dict(quality=90, subsampling=2), "baseline 4:2:0, quality 90"),
]

# Sampling layouts Pillow cannot write, made by encode_baseline: name, size, seed, (h, v) per component,
# comment.
LAYOUTS = [
    ("layout440", (37, 29), 21, [(1, 2), (1, 1), (1, 1)], "4:4:0 (luma 1x2): chroma interpolated vertically"),
    ("layout411", (37, 29), 22, [(4, 1), (1, 1), (1, 1)], "4:1:1 (luma 4x1): chroma replicated"),
    ("layoutMixed", (37, 29), 23, [(2, 2), (2, 1), (1, 2)],
     "luma 2x2, Cb 2x1, Cr 1x2: Cb interpolated vertically, Cr horizontally"),
    ("layoutLumaHalf", (21, 13), 24, [(1, 1), (2, 2), (2, 2)], "luma 1x1, chroma 2x2: luma interpolated"),
]


def segments(data):
    """Yields (marker, payload) of the marker segments of a JPEG up to its first scan."""
    pos = 2
    while True:
        marker, n = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        yield marker, data[pos + 4:pos + 2 + n]
        if marker == 0xDA:
            return
        pos += 2 + n


def zigzag():
    """The natural (row, column) of each coefficient in coded order (T.81 figure A.6)."""
    cells = [(r, c) for r in range(8) for c in range(8)]
    return sorted(cells, key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else -rc[0]))


def canonical_codes(counts, symbols):
    """The Huffman code (value, length) of each symbol of a DHT table (T.81 annex C)."""
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            codes[symbols[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return codes


class BitWriter:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def write(self, value, length):
        self.acc = self.acc << length | value & ((1 << length) - 1)
        self.n += length
        while self.n >= 8:
            self.n -= 8
            byte = self.acc >> self.n & 0xFF
            self.out += bytes([byte, 0]) if byte == 0xFF else bytes([byte])
        self.acc &= (1 << self.n) - 1

    def flush(self):
        if self.n:
            self.write((1 << (8 - self.n)) - 1, 8 - self.n)


def encode_baseline(im, factors, quality):
    """A baseline JPEG of the RGB image im with the sampling factors (h, v) of Y, Cb and Cr, one
    interleaved scan, and the quantisation and Huffman tables Pillow writes at this quality."""
    ref = io.BytesIO()
    Image.new("RGB", (8, 8)).save(ref, "JPEG", quality=quality)
    dqt = [p for m, p in segments(ref.getvalue()) if m == 0xDB]
    dht = [p for m, p in segments(ref.getvalue()) if m == 0xC4]
    zz = zigzag()
    quant = {}
    for p in dqt:
        while p:
            quant[p[0] & 15] = np.zeros((8, 8))
            for k, (r, c) in enumerate(zz):
                quant[p[0] & 15][r, c] = p[1 + k]
            p = p[65:]
    huff = {}
    for p in dht:
        while p:
            counts = list(p[1:17])
            huff[p[0]] = canonical_codes(counts, list(p[17:17 + sum(counts)]))
            p = p[17 + sum(counts):]

    w, h = im.size
    rgb = np.asarray(im, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    planes = [0.299 * r + 0.587 * g + 0.114 * b,
              -0.168736 * r - 0.331264 * g + 0.5 * b + 128,
              0.5 * r - 0.418688 * g - 0.081312 * b + 128]
    hmax, vmax = max(f[0] for f in factors), max(f[1] for f in factors)
    mcus_x, mcus_y = -(-w // (8 * hmax)), -(-h // (8 * vmax))
    u = np.arange(8)
    dct = np.cos((2 * u[None, :] + 1) * u[:, None] * np.pi / 16) * np.where(u == 0, np.sqrt(1 / 8), 0.5)[:, None]
    blocks = []
    for plane, (fh, fv) in zip(planes, factors):
        # Replicate the edges to whole MCUs, then average down to the component's resolution.
        full = np.pad(plane, ((0, mcus_y * 8 * vmax - h), (0, mcus_x * 8 * hmax - w)), mode="edge")
        sx, sy = hmax // fh, vmax // fv
        comp = full.reshape(full.shape[0] // sy, sy, full.shape[1] // sx, sx).mean(axis=(1, 3))
        blocks.append(comp)

    out = BitWriter()
    pred = [0, 0, 0]
    for my in range(mcus_y):
        for mx in range(mcus_x):
            for ci, (fh, fv) in enumerate(factors):
                t = min(ci, 1)
                for v in range(fv):
                    for hh in range(fh):
                        y0, x0 = (my * fv + v) * 8, (mx * fh + hh) * 8
                        coef = dct @ (blocks[ci][y0:y0 + 8, x0:x0 + 8] - 128) @ dct.T
                        q = [int(round(coef[rc] / quant[t][rc])) for rc in zz]
                        diff, pred[ci] = q[0] - pred[ci], q[0]
                        size = abs(diff).bit_length()
                        out.write(*huff[t][size])
                        out.write(diff if diff >= 0 else diff + (1 << size) - 1, size)
                        run = 0
                        for c in q[1:]:
                            if c == 0:
                                run += 1
                                continue
                            while run > 15:
                                out.write(*huff[16 | t][0xF0])
                                run -= 16
                            size = abs(c).bit_length()
                            out.write(*huff[16 | t][run << 4 | size])
                            out.write(c if c >= 0 else c + (1 << size) - 1, size)
                            run = 0
                        if run:
                            out.write(*huff[16 | t][0x00])
    out.flush()

    def segment(marker, payload):
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    sof = bytes([8]) + h.to_bytes(2, "big") + w.to_bytes(2, "big") + bytes([3])
    sos = bytes([3])
    for ci, (fh, fv) in enumerate(factors):
        sof += bytes([ci + 1, fh << 4 | fv, min(ci, 1)])
        sos += bytes([ci + 1, min(ci, 1) * 0x11])
    sos += bytes([0, 63, 0])
    return (b"\xFF\xD8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + b"".join(segment(0xDB, p) for p in dqt) + segment(0xC0, sof)
            + b"".join(segment(0xC4, p) for p in dht) + segment(0xDA, sos) + bytes(out.out) + b"\xFF\xD9")


def pillow_decode(data):
    """What Pillow decodes data to: the SHA-256 of the RGB bytes, and the pixels at the corners, the
    centre and three fixed places inside."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    rng = np.random.default_rng(w * 1000 + h)
    points = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, h // 2)]
    points += [(int(rng.integers(w)), int(rng.integers(h))) for _ in range(3)]
    return hashlib.sha256(im.tobytes()).hexdigest(), [(x, y) + im.getpixel((x, y)) for x, y in points]


def main():
    print("// Code generated by testdata/make_fixtures.py with Pillow %s and libjpeg-turbo %s; DO NOT EDIT."
          % (PIL.__version__, features.version("libjpeg_turbo")))
    print()
    print("package jpeg")
    print()
    print("// Small JPEGs that image/jpeg's encoder cannot write, made once with Pillow from photo-like images (and")
    print("// a few layouts Pillow cannot write either, by the generator's own encoder); see testdata/make_fixtures.py")
    print("// for how. image/jpeg decodes all of them except for colour spaces and the mixed layouts, so it stays the")
    print("// reference of the fast path; Pillow's decode of each is the reference of the exact mode.")
    print()
    print("// pillowPixel is a pixel of Pillow's decode.")
    print("type pillowPixel struct {")
    print("\tx, y int")
    print("\trgb  [3]uint8")
    print("}")
    print()
    print("var pillowFixtures = []struct {")
    print("\tname   string")
    print("\tdata   string // base64")
    print("\tsha256 string // of the RGB bytes of Pillow's Image.open(f).convert(\"RGB\")")
    print("\tpixels []pillowPixel")
    print("}{")
    files = []
    for name, (w, h), seed, mode, opts, comment in FIXTURES:
        im = photo(w, h, seed).convert(mode)
        buf = io.BytesIO()
        im.save(buf, "JPEG", **opts)
        files.append((name, w, h, comment, buf.getvalue()))
    for name, (w, h), seed, factors, comment in LAYOUTS:
        files.append((name, w, h, "baseline " + comment + ", quality 85",
                      encode_baseline(photo(w, h, seed), factors, 85)))
    for name, w, h, comment, data in files:
        digest, pixels = pillow_decode(data)
        print("\t// %dx%d %s." % (w, h, comment))
        print('\t{"%s", "%s",' % (name, base64.b64encode(data).decode()))
        print('\t\t"%s", []pillowPixel{%s}},' % (
            digest, ", ".join("{%d, %d, [3]uint8{%d, %d, %d}}" % p for p in pixels)))
    print("}")


main()
