"""What the evaluation tools share: parameter constraints and the reading of images.

Seeds, devices, mini-batches and seeded layers come from the project's one
helper of each (:func:`skdim._runtime.seed_from`,
:func:`skdim._runtime.resolve_device`, :func:`skdim.nn.sampling.batch_indices`,
:func:`skdim.nn.seeding.build_seeded`); image layouts follow the estimator's
rule (:func:`skdim._data.resolve_layout`).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array
from torch import Tensor

from .._data import resolve_layout, to_channels_first

LAYERS: tuple[str, ...] = ("conv", "fc", "y")

#: ``input_layout`` values that describe a batch of images.
IMAGE_LAYOUTS: tuple[str, ...] = ("auto", "NHWC", "NCHW", "NHW")

#: Constraints of the training loops' common parameters (``validate_params``).
TRAINING_CONSTRAINTS: dict[str, list] = {
    "epochs": [Interval(Integral, 1, None, closed="left")],
    # BatchNorm cannot train on a batch of one row.
    "batch_size": [Interval(Integral, 2, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "device": [str, torch.device],
    "random_state": ["random_state"],
}

IMAGE_LAYOUT_CONSTRAINT = [StrOptions(set(IMAGE_LAYOUTS))]


def check_images(images, name: str, input_layout: str = "auto") -> tuple[Tensor, bool]:
    """A float64 ``(n, C, H, W)`` CPU tensor from a batch of images.

    ``images`` is ``(n, H, W)`` grayscale or ``(n, H, W, C)`` /
    ``(n, C, H, W)``, read with the estimator's layout rule
    (:func:`skdim._data.resolve_layout`): with ``input_layout="auto"`` a 4-D
    batch is channels-last or channels-first according to which axis has 1,
    3 or 4 entries, and a shape where both could (``(n, 3, 8, 3)``) raises a
    ValueError asking for ``input_layout``. Values are kept as they are (no
    scaling); the second value returned says whether they were ``uint8``.
    """
    if isinstance(images, Tensor):
        images = images.detach().cpu().numpy()
    arr = check_array(images, dtype="numeric", ensure_2d=False, allow_nd=True,
                      ensure_all_finite=True, input_name=name)
    if arr.ndim not in (3, 4):
        raise ValueError(
            f"{name} must be a batch of images (n, H, W), (n, H, W, C) or "
            f"(n, C, H, W); got an array of shape {arr.shape}."
        )
    try:
        layout = resolve_layout(arr.shape[1:], input_layout)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if not layout.is_image:
        raise ValueError(
            f"{name}: input_layout={input_layout!r} does not describe images; use one of "
            f"{IMAGE_LAYOUTS}."
        )
    x = np.ascontiguousarray(to_channels_first(arr, layout), dtype=np.float64)
    return torch.from_numpy(x), arr.dtype == np.uint8
