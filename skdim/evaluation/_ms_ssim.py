"""Multi-scale structural similarity and the reconstruction evaluation.

MS-SSIM follows Wang, Simoncelli & Bovik (2003) and Wang's reference
implementation: an 11x11 Gaussian window (sigma 1.5) applied without padding,
K1 = 0.01, K2 = 0.03, the five weights (0.0448, 0.2856, 0.3001, 0.2363,
0.1333), 2x2 average pooling between scales, the mean contrast-structure
term at every scale but the coarsest, and the mean SSIM (luminance times
contrast-structure) at the coarsest.

Public names are re-exported by :mod:`skdim.evaluation`.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_array, check_consistent_length
from torch import Tensor, nn

from .._runtime import resolve_device, seed_from
from ..nn.sampling import batch_indices
from ..nn.seeding import build_seeded, seeded_generator
from ._utils import IMAGE_LAYOUT_CONSTRAINT, TRAINING_CONSTRAINTS, check_images

__all__ = ["ms_ssim", "ms_ssim_tensor", "ms_ssim_config", "reconstruction_ms_ssim"]

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2, _SIGMA = 0.01, 0.03, 1.5
_MAX_WIN = 11
_MIN_AUTO_WIN = 7

_WINDOW_CONSTRAINTS: dict[str, list] = {
    "scales": [Interval(Integral, 1, len(MS_SSIM_WEIGHTS), closed="both"), None],
    "win_size": [Interval(Integral, 3, None, closed="left"), None],
}


def gaussian_window(win_size: int, sigma: float = _SIGMA, *,
                    dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """Normalised 1-D Gaussian of ``win_size`` taps (the 2-D window is its
    outer product, applied separably)."""
    x = torch.arange(win_size, dtype=dtype, device=device) - (win_size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: Tensor, window: Tensor) -> Tensor:
    """Per-channel 'valid' Gaussian filtering of (n, C, H, W)."""
    c, k = x.shape[1], window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim_components(x: Tensor, y: Tensor, window: Tensor, c1: float,
                    c2: float) -> tuple[Tensor, Tensor]:
    """Mean SSIM and mean contrast-structure term, each of shape (n, C)."""
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x**2
    var_y = _blur(y * y, window) - mu_y**2
    cov = _blur(x * y, window) - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    lum_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum_map * cs_map).mean((-2, -1)), cs_map.mean((-2, -1))


def ms_ssim_tensor(x: Tensor, y: Tensor, *, data_range: float = 1.0,
                   weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
                   win_size: int = _MAX_WIN, sigma: float = _SIGMA) -> Tensor:
    """MS-SSIM of two (n, C, H, W) tensors, one value per image, shape (n,).

    One scale per entry of ``weights`` (used as given: normalise them
    first). Negative terms are clamped to 0 before the weighted product;
    channels are scored separately and averaged.
    """
    window = gaussian_window(win_size, sigma, dtype=x.dtype, device=x.device)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    factors = []
    for scale in range(len(weights)):
        ssim, cs = ssim_components(x, y, window, c1, c2)
        if scale == len(weights) - 1:
            factors.append(ssim)
        else:
            factors.append(cs)
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return torch.relu(torch.stack(factors)).pow(w).prod(0).mean(1)


def ms_ssim_config(height: int, width: int, scales: int | None = None,
                   win_size: int | None = None) -> tuple[int, int, tuple[float, ...]]:
    """Resolve ``(scales, win_size, weights)`` for images of this size.

    See :func:`ms_ssim` for the rule. ``scales`` (1 to 5) and ``win_size``
    (at least 3) are validated by the public functions; this raises a
    ValueError for an even window or images too small for the request.
    """
    side = min(height, width)

    def coarsest(m: int) -> int:  # side after m - 1 halvings (floored)
        return side // 2 ** (m - 1)

    def largest_odd(n: int) -> int:
        return min(_MAX_WIN, n if n % 2 else n - 1)

    if win_size is not None and win_size % 2 == 0:
        raise ValueError(f"win_size={win_size} must be odd.")
    if scales is None:
        target = _MIN_AUTO_WIN if win_size is None else win_size
        fits = [m for m in range(1, len(MS_SSIM_WEIGHTS) + 1) if coarsest(m) >= target]
        scales = max(fits, default=1)
    if win_size is None:
        win_size = largest_odd(coarsest(scales))
    if win_size < 3 or coarsest(scales) < win_size:
        raise ValueError(
            f"images of {height}x{width} pixels are too small for MS-SSIM with "
            f"scales={scales} and win_size={win_size}: the coarsest scale is "
            f"{coarsest(scales)} pixels a side and must be at least the window "
            "(and the window at least 3)."
        )
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    return int(scales), int(win_size), tuple(float(w) for w in weights / weights.sum())


def _with_batch_axis(img):
    """A single ``(H, W)`` image as a batch of one."""
    if isinstance(img, Tensor):
        return img[None]
    return np.asarray(img)[None]


@validate_params(
    {
        "img1": ["array-like"],
        "img2": ["array-like"],
        "data_range": [Interval(Real, 0, None, closed="neither")],
        **_WINDOW_CONSTRAINTS,
        "input_layout": IMAGE_LAYOUT_CONSTRAINT,
    },
    prefer_skip_nested_validation=True,
)
def ms_ssim(img1, img2, *, data_range: float = 1.0, scales: int | None = None,
            win_size: int | None = None, input_layout: str = "auto"):
    """Multi-scale structural similarity (Wang, Simoncelli & Bovik, 2003).

    Computed as in Wang's reference code: a Gaussian window (sigma 1.5)
    applied without padding, K1 = 0.01, K2 = 0.03, the weights (0.0448,
    0.2856, 0.3001, 0.2363, 0.1333) from fine to coarse, 2x2 average pooling
    between scales (an odd row or column is dropped), the mean
    contrast-structure term at every scale but the coarsest and the mean SSIM
    (luminance times contrast-structure) at the coarsest. A term that comes
    out negative (anti-correlated images) is clamped to 0, the usual
    convention, so the result lies in [0, 1]. Colour channels are scored
    separately and averaged. Computed in float64.

    **Small images.** Five scales with an 11x11 window need about 176 pixels
    a side. When ``scales`` and ``win_size`` are None the rule is: use the
    most scales (at most 5) whose coarsest scale is still at least 7 pixels a
    side, and the largest odd window up to 11 that fits the coarsest scale;
    the weights of the scales used are renormalised to sum to 1. Hence
    32x32 (CIFAR-10) gets 3 scales and a 7x7 window, 64x64 gets 4 and 7x7,
    96x96 gets 4 and 11x11, 176x176 and larger the standard 5 and 11x11, and
    8x8 a single scale (plain SSIM) with a 7x7 window. Give only
    ``win_size`` to get the most scales that fit it, or only ``scales`` to
    get the largest window that fits.

    Parameters
    ----------
    img1, img2 : array-like or torch.Tensor
        Two images of the same shape: one (H, W) grayscale image, or batches
        (n, H, W) grayscale, (n, H, W, C) or (n, C, H, W) (see
        ``input_layout``).
    data_range : float, default=1.0
        Value range of the pixels (1.0 for [0, 1] floats, 255 for uint8).
    scales : int, default=None
        Number of scales, 1 to 5; None chooses it from the image size.
    win_size : int, default=None
        Odd side of the Gaussian window, at least 3; None chooses it.
    input_layout : {"auto", "NHWC", "NCHW", "NHW"}, default="auto"
        Layout of both batches, with the rule of :class:`~skdim.DeepInfoMax`:
        ``"auto"`` reads a 4-D batch as channels-last or channels-first from
        which axis has 1, 3 or 4 entries and raises a ValueError when both do
        (e.g. ``(n, 3, 8, 3)``) or neither does (e.g. 2 channels); a 3-D
        batch is grayscale ``(n, H, W)``. Name the layout to resolve such
        shapes.

    Returns
    -------
    score : float or ndarray of shape (n,)
        A float for a single (H, W) image, else one value per pair.

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.evaluation import ms_ssim
    >>> rng = np.random.default_rng(0)
    >>> a = rng.uniform(size=(2, 32, 32, 3))
    >>> ms_ssim(a, a)
    array([1., 1.])
    >>> noisy = np.clip(a + rng.normal(scale=0.1, size=a.shape), 0, 1)
    >>> bool(ms_ssim(a, noisy).max() < 1)
    True
    """
    single = np.ndim(img1) == 2
    if single:
        img1, img2 = _with_batch_axis(img1), _with_batch_axis(img2)
    x, _ = check_images(img1, "img1", input_layout)
    y, _ = check_images(img2, "img2", input_layout)
    if x.shape != y.shape:
        raise ValueError(
            f"img1 and img2 must have the same shape; got {tuple(np.shape(img1))} "
            f"and {tuple(np.shape(img2))}."
        )
    scales, win_size, weights = ms_ssim_config(x.shape[2], x.shape[3], scales, win_size)
    scores = ms_ssim_tensor(x, y, data_range=float(data_range), weights=weights,
                            win_size=win_size).numpy()
    return float(scores[0]) if single else scores


def _unit_images(images, name: str, input_layout: str) -> Tensor:
    """(n, C, H, W) float64 in [0, 1]; uint8 is divided by 255."""
    x, is_uint8 = check_images(images, name, input_layout)
    if is_uint8:
        return x / 255.0
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name} must be uint8 or floats in [0, 1]; got values in "
            f"[{float(x.min()):.3g}, {float(x.max()):.3g}]."
        )
    return x


@validate_params(
    {
        "codes_train": ["array-like"],
        "images_train": ["array-like"],
        "codes_test": ["array-like"],
        "images_test": ["array-like"],
        "hidden": [Interval(Integral, 1, None, closed="left")],
        **TRAINING_CONSTRAINTS,
        **_WINDOW_CONSTRAINTS,
        "input_layout": IMAGE_LAYOUT_CONSTRAINT,
    },
    prefer_skip_nested_validation=True,
)
def reconstruction_ms_ssim(
    codes_train,
    images_train,
    codes_test,
    images_test,
    *,
    hidden: int = 512,
    epochs: int = 50,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    scales: int | None = None,
    win_size: int | None = None,
    input_layout: str = "auto",
    device="cpu",
    random_state=None,
) -> float:
    """Mean MS-SSIM of images reconstructed from frozen codes.

    The paper's reconstruction evaluation (section 4.1, table 4): a decoder
    is trained with an L2 loss to map codes to images; its MS-SSIM on held
    out pairs measures how much pixel-level information the codes keep. The
    decoder is a size-agnostic MLP: two hidden layers of ``hidden`` units
    with ReLU and a sigmoid output of C*H*W pixels, fed with codes
    standardised with training-set statistics and trained with Adam.

    Parameters
    ----------
    codes_train : array-like of shape (n_train, n_components)
        Codes of the training images (e.g. ``est.transform(X_train)``).
    images_train : array-like
        The images, (n, H, W), (n, H, W, C) or (n, C, H, W) (see
        ``input_layout``); uint8 (divided by 255) or floats in [0, 1].
    codes_test : array-like of shape (n_test, n_components)
        Codes of the held-out images.
    images_test : array-like
        Held-out images, same layout and size as ``images_train``.
    hidden : int, default=512
        Width of the decoder's two hidden layers.
    epochs : int, default=50
        Passes over the training pairs.
    batch_size : int, default=64
        Minibatch size.
    learning_rate : float, default=1e-3
        Adam learning rate.
    scales, win_size : int, default=None
        Passed to :func:`ms_ssim`; None applies its small-image rule.
    input_layout : {"auto", "NHWC", "NCHW", "NHW"}, default="auto"
        Layout of both image batches, read as by :func:`ms_ssim` (an
        ambiguous shape such as ``(n, 3, 8, 3)`` raises a ValueError unless
        the layout is named).
    device : str or torch.device, default="cpu"
        Where to train; ``"auto"`` picks CUDA when it is available.
    random_state : int, RandomState instance or None, default=None
        Seeds the decoder's initialisation and the shuffling, each from its
        own :class:`torch.Generator` (PyTorch's global generator is never
        used). An int always gives the same result; None draws one seed from
        NumPy's global ``RandomState`` (so ``np.random.seed`` makes it
        repeatable), as elsewhere in scikit-learn.

    Returns
    -------
    score : float
        Mean MS-SSIM between decoded and true test images, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.evaluation import reconstruction_ms_ssim
    >>> rng = np.random.default_rng(0)
    >>> images = rng.uniform(size=(80, 16, 16))
    >>> codes = images.reshape(80, -1)       # codes that contain the image
    >>> score = reconstruction_ms_ssim(codes[:60], images[:60], codes[60:],
    ...                                images[60:], epochs=5, random_state=0)
    >>> 0.0 <= score <= 1.0
    True
    """
    codes_train = check_array(codes_train, dtype=np.float32, input_name="codes_train")
    codes_test = check_array(codes_test, dtype=np.float32, input_name="codes_test")
    target_train = _unit_images(images_train, "images_train", input_layout)
    target_test = _unit_images(images_test, "images_test", input_layout)
    check_consistent_length(codes_train, target_train)
    check_consistent_length(codes_test, target_test)
    if codes_train.shape[1] != codes_test.shape[1]:
        raise ValueError(
            f"codes_train has {codes_train.shape[1]} components but codes_test has "
            f"{codes_test.shape[1]}."
        )
    if target_train.shape[1:] != target_test.shape[1:]:
        raise ValueError(
            f"images_train are {tuple(target_train.shape[1:])} (C, H, W) but "
            f"images_test are {tuple(target_test.shape[1:])}."
        )
    if len(codes_train) < 2:
        raise ValueError(
            f"n_samples={len(codes_train)}: reconstruction_ms_ssim needs at least 2 "
            "training pairs."
        )
    c, h, w = target_train.shape[1:]
    scales, win_size, weights = ms_ssim_config(h, w, scales, win_size)  # fail fast
    dev = resolve_device(device)

    scaler = StandardScaler().fit(codes_train)
    z_train = torch.from_numpy(scaler.transform(codes_train).astype(np.float32)).to(dev)
    z_test = torch.from_numpy(scaler.transform(codes_test).astype(np.float32)).to(dev)
    x_train = target_train.flatten(1).float().to(dev)

    seed = seed_from(random_state)
    shuffle = seeded_generator(seed + 1)
    decoder = build_seeded(seed, lambda: nn.Sequential(
        nn.Linear(z_train.shape[1], hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, c * h * w), nn.Sigmoid(),
    )).to(dev)
    opt = torch.optim.Adam(decoder.parameters(), lr=learning_rate)
    for _ in range(epochs):
        for rows in batch_indices(len(z_train), batch_size, shuffle):
            idx = torch.from_numpy(rows).to(dev)
            loss = F.mse_loss(decoder(z_train[idx]), x_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    decoder.eval()
    with torch.no_grad():
        recon = torch.cat([decoder(b) for b in z_test.split(1024)]).cpu().double()
    scores = ms_ssim_tensor(recon.view(-1, c, h, w), target_test, data_range=1.0,
                            weights=weights, win_size=win_size)
    return float(scores.mean())
