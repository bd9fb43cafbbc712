"""Image transforms for CIFAR, on whole batches and on the device the data lives on.

Every function takes and returns NCHW arrays of any device (NumPy, CuPy, the CPU stand-in) and
works with ``xp`` functions and index arithmetic only: no Python loop over images, nothing pulled
to the host. Random choices come from a generator passed in (``tinydm.backend.rng``); the
training code seeds it from ``(seed, iteration)`` (tinydm.data.sampling.RandomStream), so a
batch is a pure function of the iteration and a resumed run sees the same batches.

The two augmentations of the paper (docs/released-code.md, "CIFAR-100"):

* ``"pad"``: pad 4 pixels of zeros (black) on every side, take a random 32x32 crop, flip
  horizontally with probability 1/2 -- the paper's text ("standard data augmentation");
* ``"resize"``: resize every image to 36x36 once (bilinear), then a random 32x32 crop and a
  random flip per batch; test images are resized too and centre-cropped -- the released code.

then subtract the per-channel means (125.3, 123.0, 113.9) of the training set, without dividing
by a standard deviation (as released; pass ``std`` to divide). :class:`Pipeline` bundles these.
"""

from .. import backend

#: Per-channel means (R, G, B) of the CIFAR training images, as the released code subtracts them.
CIFAR_MEAN = (125.3, 123.0, 113.9)
#: The commonly used per-channel standard deviations, for ``std=CIFAR_STD`` (the released code
#: does not divide).
CIFAR_STD = (63.0, 62.1, 66.7)

AUGMENTATIONS = ("pad", "resize", "none")


def _check_images(images, name):
    if images.ndim != 4:
        raise ValueError(f"{name}: images must be NCHW (4-D), got shape {tuple(images.shape)}")


def normalize(images, mean=CIFAR_MEAN, std=None):
    """``(images - mean) / std`` per channel, as float32 (``std=None``: no division)."""
    _check_images(images, "normalize")
    xp = backend.get_array_module(images)
    channels = images.shape[1]
    for name, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) != channels:
            raise ValueError(f"normalize: {name} has {len(values)} values, the images "
                             f"{channels} channels")
    x = images.astype(xp.float32) - xp.asarray(mean, dtype=xp.float32).reshape(1, -1, 1, 1)
    if std is not None:
        x = x / xp.asarray(std, dtype=xp.float32).reshape(1, -1, 1, 1)
    return x


def pad(images, padding):
    """Zero-pad ``padding`` pixels on each side of the two spatial axes."""
    _check_images(images, "pad")
    xp = backend.get_array_module(images)
    p = int(padding)
    return xp.pad(images, ((0, 0), (0, 0), (p, p), (p, p))) if p else images


def crop(images, top, left, size, flip=None):
    """Crop ``size x size`` windows, image ``n``'s at ``(top[n], left[n])``, mirrored left-right
    where ``flip[n]`` is true: one gather for the whole batch.

    ``top``, ``left`` (and ``flip``) are integer (boolean) arrays of length N on the images'
    device. Output pixel ``(n, c, i, j)`` is input pixel ``(n, c, top[n] + i, left[n] + j')``
    with ``j' = size - 1 - j`` if flipped, else ``j``.
    """
    _check_images(images, "crop")
    xp = backend.get_array_module(images)
    n, c, h, w = images.shape
    if not 0 < size <= min(h, w):
        raise ValueError(f"crop: size {size} does not fit in images of {h}x{w}")
    r = xp.arange(size)
    rows = top.reshape(-1, 1) + r                                   # (N, size)
    cols = left.reshape(-1, 1) + (r if flip is None else
                                  xp.where(flip.reshape(-1, 1), size - 1 - r, r))
    batch = xp.arange(n).reshape(-1, 1, 1, 1)
    channel = xp.arange(c).reshape(1, -1, 1, 1)
    return images[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(images, rng, size, padding=0, flip=True):
    """Pad by ``padding`` (zeros), take a uniformly random ``size x size`` crop of each image and
    mirror it with probability 1/2 (if ``flip``). Draws from ``rng``, in this order: the row
    offsets, the column offsets, the flips (N integers each)."""
    x = pad(images, padding)
    n, _, h, w = x.shape
    if not 0 < size <= min(h, w):
        raise ValueError(f"random_crop_flip: size {size} does not fit in padded images of {h}x{w}")
    top = rng.integers(0, h - size + 1, size=n)
    left = rng.integers(0, w - size + 1, size=n)
    flips = rng.integers(0, 2, size=n) == 1 if flip else None
    return crop(x, top, left, size, flips)


def center_crop(images, size):
    """The central ``size x size`` window of every image (a view)."""
    _check_images(images, "center_crop")
    h, w = images.shape[2:]
    if not 0 < size <= min(h, w):
        raise ValueError(f"center_crop: size {size} does not fit in images of {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[:, :, top:top + size, left:left + size]


def _bilinear_taps(xp, n_in, n_out):
    """Source indices and weights of 1-D bilinear resampling with half-pixel centres:
    output ``i`` samples input coordinate ``s = (i + 0.5) n_in / n_out - 0.5`` (clamped to the
    image) as ``(1 - f) x[i0] + f x[i1]``, ``i0 = floor(s)``, ``i1 = min(i0 + 1, n_in - 1)``,
    ``f = s - i0``: what PIL's and OpenCV's bilinear resize compute."""
    s = xp.clip((xp.arange(n_out, dtype=xp.float64) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = xp.floor(s).astype(xp.int64)
    i1 = xp.minimum(i0 + 1, n_in - 1)
    return i0, i1, (s - i0).astype(xp.float32)


def resize_bilinear(images, size, chunk=2048):
    """Resize every image to ``size x size`` (bilinear, half-pixel centres; separable: rows, then
    columns). uint8 input gives uint8 output, rounded as an image file stores it; float input
    gives float32. Works through ``chunk`` images at a time to bound the float32 temporaries."""
    _check_images(images, "resize_bilinear")
    xp = backend.get_array_module(images)
    _, _, h, w = images.shape
    r0, r1, fr = _bilinear_taps(xp, h, size)
    c0, c1, fc = _bilinear_taps(xp, w, size)
    fr, fc = fr.reshape(-1, 1), fc
    parts = []
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].astype(xp.float32)
        x = x[:, :, r0, :] * (1 - fr) + x[:, :, r1, :] * fr
        x = x[:, :, :, c0] * (1 - fc) + x[:, :, :, c1] * fc
        if images.dtype == xp.uint8:
            x = xp.clip(xp.rint(x), 0, 255).astype(xp.uint8)
        parts.append(x)
    return xp.concatenate(parts, axis=0) if parts else images.astype(xp.float32)


class Pipeline:
    """What CIFAR images go through, for training batches and for evaluation.

    ``Pipeline(augment="pad", mean=CIFAR_MEAN, std=None, padding=4, resize_margin=4)``:

    * :meth:`prepare` (once per image set, deterministic): the ``"resize"`` variant resizes to
      ``H + resize_margin`` (36 for CIFAR); the others return the images as they are;
    * :meth:`train` (per batch, random, from ``rng``): random crop back to ``H x W`` (after
      zero padding for ``"pad"``) with a random flip; ``"none"`` leaves the images alone;
    * :meth:`test`: centre crop (``"resize"``), nothing else;

    and both :meth:`train` and :meth:`test` finish with :func:`normalize`. ``size`` (the crop,
    the network's input) is the original image size, set by the first :meth:`prepare`.
    """

    def __init__(self, augment="pad", mean=CIFAR_MEAN, std=None, padding=4, resize_margin=4):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"Pipeline: unknown augmentation {augment!r}; choose one of "
                             f"{AUGMENTATIONS}")
        self.augment, self.mean = augment, tuple(mean)
        self.std = None if std is None else tuple(std)
        self.padding, self.resize_margin = padding, resize_margin
        self.size = None

    def prepare(self, images):
        _check_images(images, "Pipeline.prepare")
        h, w = images.shape[2:]
        if h != w:
            raise ValueError(f"Pipeline.prepare: square images expected, got {h}x{w}")
        if self.size is not None and self.size != h:
            raise ValueError(f"Pipeline.prepare: images of {h}x{w}, but this pipeline crops "
                             f"{self.size}x{self.size} (sized by the images prepared first)")
        self.size = h
        if self.augment == "resize":
            return resize_bilinear(images, h + self.resize_margin)
        return images

    def train(self, images, rng):
        if self.augment != "none":
            images = random_crop_flip(images, rng, self.size,
                                      padding=self.padding if self.augment == "pad" else 0)
        return normalize(images, self.mean, self.std)

    def test(self, images):
        if self.augment == "resize":
            images = center_crop(images, self.size)
        return normalize(images, self.mean, self.std)

    def describe(self):
        """One line for logs and results files."""
        steps = {"pad": f"pad {self.padding} (zeros), random {self.size}x{self.size} crop, "
                        f"random horizontal flip",
                 "resize": f"resize to {(self.size or 0) + self.resize_margin} (bilinear), random "
                           f"{self.size}x{self.size} crop, random flip (test: centre crop)",
                 "none": "no augmentation"}[self.augment]
        scale = "" if self.std is None else f", divide by std {self.std}"
        return f"{steps}; subtract per-channel mean {self.mean}{scale}"
