"""Writes pillow420.jpg, a 4:2:0 JPEG of a photo-like image with sharp colour changes, and
pillow420.png, what Pillow decodes it to (Image.open(f).convert("RGB")): the pair with which the tests
check that evaluation sees the pixels a torchvision pipeline sees.

Run once, from this directory, with Pillow 13.0.0 (libjpeg-turbo 3.2.0):

    python3 make_pillow_pair.py

The image comes from a fixed seed, so the files are the same on every run with the same Pillow.
"""

import numpy as np
from PIL import Image

w, h = 61, 45
rng = np.random.default_rng(420)
y, x = np.mgrid[0:h, 0:w].astype(np.float64)
img = np.stack([128 + 100 * np.sin(x * 0.45), 128 + 90 * np.sin(y * 0.33 + x * 0.1),
                128 + 90 * np.cos((x + y) * 0.27)], -1) + rng.normal(0, 4, (h, w, 3))
Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8)).save(
    "pillow420.jpg", quality=90, subsampling=2)
Image.open("pillow420.jpg").convert("RGB").save("pillow420.png", optimize=True)
