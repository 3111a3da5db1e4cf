"""Array layouts: how one row of ``X`` maps to a ``(C, *spatial)`` tensor.

One rule for every part of skdim that takes images (the estimator, the
metrics and the evaluation tools): :func:`resolve_layout` decides the layout
from the per-sample shape and raises on a shape that could be read two ways.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

INPUT_LAYOUTS: tuple[str, ...] = ("auto", "NHWC", "NCHW", "NHW", "NCL", "NL")
_CHANNEL_COUNTS = (1, 3, 4)
_MIN_SPATIAL = 1


@dataclass(frozen=True)
class Layout:
    """How one row of ``X`` maps to a ``(C, *spatial)`` tensor.

    ``layout`` is the layout of the (possibly reshaped) array; ``row_shape`` is
    the shape a flat row is reshaped to first (``None`` when ``X`` is not flat
    images).
    """

    layout: str
    in_channels: int
    spatial: tuple[int, ...]
    row_shape: tuple[int, ...] | None = None

    @property
    def is_image(self) -> bool:
        return len(self.spatial) == 2


def _ambiguous(shape: tuple[int, ...]) -> ValueError:
    return ValueError(
        f"Cannot tell the channel axis of images with per-sample shape {shape}: "
        "both the first and the last axis could hold channels (1, 3 or 4). "
        "Pass input_layout='NHWC' (channels last) or input_layout='NCHW' "
        "(channels first)."
    )


def _image_layout(shape: tuple[int, ...], input_layout: str) -> str:
    """Decide NHWC/NCHW for a per-sample 3-tuple shape."""
    if input_layout in ("NHWC", "NCHW"):
        return input_layout
    if input_layout != "auto":
        raise ValueError(
            f"input_layout={input_layout!r} does not describe images with "
            f"per-sample shape {shape}; use 'NHWC', 'NCHW' or 'auto'."
        )
    first, last = shape[0] in _CHANNEL_COUNTS, shape[-1] in _CHANNEL_COUNTS
    if first and last:
        raise _ambiguous(shape)
    if last:
        return "NHWC"
    if first:
        return "NCHW"
    raise ValueError(
        f"Cannot find a channel axis (1, 3 or 4 entries) in images with per-sample "
        f"shape {shape}. Pass input_layout='NHWC' or 'NCHW' explicitly."
    )


def _from_image(shape: tuple[int, ...], layout: str, row_shape=None) -> Layout:
    if layout == "NHWC":
        h, w, c = shape
    else:
        c, h, w = shape
    return Layout(layout, int(c), (int(h), int(w)), row_shape)


def resolve_layout(
    sample_shape: tuple[int, ...], input_layout: str = "auto", image_shape=None
) -> Layout:
    """Resolve the layout of ``X`` from its per-sample shape ``X.shape[1:]``.

    Rules for ``input_layout="auto"``: 4-D arrays are images, channels-last or
    channels-first decided from which axis has 1, 3 or 4 entries; 3-D arrays
    are grayscale images ``(n, H, W)``; 2-D arrays are images of
    ``image_shape`` when given, otherwise 1-channel signals of length ``d``.
    """
    if input_layout not in INPUT_LAYOUTS:
        raise ValueError(
            f"input_layout must be one of {INPUT_LAYOUTS}; got {input_layout!r}."
        )
    sample_shape = tuple(int(s) for s in sample_shape)
    ndim = len(sample_shape) + 1
    if image_shape is not None:
        if ndim != 2:
            raise ValueError(
                "image_shape is only used for flat 2-D X of shape (n_samples, n_features); "
                f"got a {ndim}-D X. Leave image_shape=None for arrays that already have "
                "image axes."
            )
        entries = np.atleast_1d(np.asarray(image_shape, dtype=object)).ravel()
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in entries):
            raise ValueError(
                "image_shape must be a tuple of integers (H, W), (H, W, C) or (C, H, W); "
                f"got {image_shape!r}."
            )
        row = tuple(int(s) for s in entries)
        if len(row) not in (2, 3) or min(row) < 1:
            raise ValueError(
                "image_shape must be (H, W), (H, W, C) or (C, H, W) with positive "
                f"entries; got {image_shape!r}."
            )
        if int(np.prod(row)) != sample_shape[0]:
            raise ValueError(
                f"image_shape={row} holds {int(np.prod(row))} values per image but X has "
                f"{sample_shape[0]} features per row."
            )
        if len(row) == 2:
            if input_layout not in ("auto", "NHW"):
                raise ValueError(
                    f"image_shape={row} describes grayscale images; input_layout must "
                    f"be 'auto' or 'NHW', got {input_layout!r}."
                )
            return Layout("NHW", 1, row, row)
        return _from_image(row, _image_layout(row, input_layout), row)

    if ndim == 4:
        return _from_image(sample_shape, _image_layout(sample_shape, input_layout))
    if ndim == 3:
        if input_layout in ("auto", "NHW"):
            return Layout("NHW", 1, sample_shape)
        if input_layout == "NCL":
            return Layout("NCL", sample_shape[0], (sample_shape[1],))
        raise ValueError(
            f"input_layout={input_layout!r} needs a 4-D X; a 3-D X is read as "
            "grayscale images (input_layout='NHW') or signals with channels "
            "(input_layout='NCL')."
        )
    if ndim == 2:
        if input_layout in ("auto", "NL"):
            return Layout("NL", 1, sample_shape)
        raise ValueError(
            f"A 2-D X is read as 1-channel signals (input_layout='NL') or, with "
            f"image_shape=..., as flat images; input_layout={input_layout!r} needs "
            "another rank."
        )
    raise ValueError(
        f"X must be 2-D (n_samples, n_features), 3-D (n, H, W) or (n, C, L), or 4-D "
        f"images (n, H, W, C) or (n, C, H, W); got a {ndim}-D array."
    )


def to_channels_first(batch: np.ndarray, layout: Layout) -> np.ndarray:
    """View a batch of rows as ``(n, C, *spatial)`` (a copy only for NHWC)."""
    n = batch.shape[0]
    if layout.row_shape is not None:
        batch = batch.reshape(n, *layout.row_shape)
    if layout.layout == "NHWC":
        return batch.transpose(0, 3, 1, 2)
    return batch.reshape(n, layout.in_channels, *layout.spatial)


def flat_image_hint(n_features: int) -> str | None:
    """How ``n_features`` values would form a square image, if they can.

    Returns e.g. ``"768 = 16 x 16 x 3"`` when ``n_features = H * W * C`` with
    ``H == W >= 8`` and ``C`` in (1, 3, 4) -- a flattened image read as a
    signal -- else None. Images smaller than 8x8 are not worth a warning.
    """
    for c in (3, 1, 4):
        if n_features % c:
            continue
        side = int(round((n_features // c) ** 0.5))
        if side >= 8 and side * side * c == n_features:
            return f"{n_features} = {side} x {side} x {c}" if c > 1 else f"{n_features} = {side} x {side}"
    return None
