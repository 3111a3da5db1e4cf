"""Nearest neighbours in code space (paper appendix A.4).

Public names are re-exported by :mod:`skdim.evaluation`.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_array

from ._utils import IMAGE_LAYOUT_CONSTRAINT, check_images

__all__ = ["nearest_neighbors", "plot_nearest_neighbors"]


@validate_params(
    {
        "codes_query": ["array-like"],
        "codes_reference": ["array-like"],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def nearest_neighbors(codes_query, codes_reference, n_neighbors: int = 5):
    """Nearest reference codes of each query code under the L1 distance.

    The paper's nearest-neighbour analysis (appendix A.4) uses the L1
    (cityblock) distance, which suits codes matched to a uniform prior.

    Parameters
    ----------
    codes_query : array-like of shape (n_queries, n_components)
        Codes to look up (e.g. one test image per class).
    codes_reference : array-like of shape (n_reference, n_components)
        Codes to search.
    n_neighbors : int, default=5
        Neighbours per query, at most ``n_reference``.

    Returns
    -------
    distances : ndarray of shape (n_queries, n_neighbors)
        L1 distances, ascending along each row.
    indices : ndarray of shape (n_queries, n_neighbors)
        Row indices into ``codes_reference``. A query that is itself in the
        reference set finds itself first.

    Examples
    --------
    >>> import numpy as np
    >>> from skdim.evaluation import nearest_neighbors
    >>> ref = np.array([[0.0, 0.0], [3.0, 0.0], [2.0, 2.0]])
    >>> dist, ind = nearest_neighbors([[0.0, 2.9]], ref, n_neighbors=2)
    >>> ind
    array([[0, 2]])
    >>> dist
    array([[2.9, 2.9]])
    """
    codes_query = check_array(codes_query, input_name="codes_query")
    codes_reference = check_array(codes_reference, input_name="codes_reference")
    if codes_query.shape[1] != codes_reference.shape[1]:
        raise ValueError(
            f"codes_query has {codes_query.shape[1]} components but codes_reference "
            f"has {codes_reference.shape[1]}."
        )
    if n_neighbors > len(codes_reference):
        raise ValueError(
            f"n_neighbors={n_neighbors} must be at most the number of reference codes "
            f"({len(codes_reference)})."
        )
    index = NearestNeighbors(n_neighbors=n_neighbors, metric="manhattan")
    index.fit(codes_reference)
    return index.kneighbors(codes_query)


def _displayable(images, name: str, input_layout: str) -> np.ndarray:
    """(n, H, W) or (n, H, W, 3) floats in [0, 1] for imshow."""
    x, is_uint8 = check_images(images, name, input_layout)
    if is_uint8:
        x = x / 255.0
    elif x.numel() and (x.min() < 0 or x.max() > 1):
        # Floats outside [0, 1]: min-max scale the whole batch at once so
        # that relative brightness between images is kept.
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    x = x.permute(0, 2, 3, 1).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


@validate_params(
    {
        "images_query": ["array-like"],
        "images_reference": ["array-like"],
        "indices": ["array-like"],
        "fig": "no_validation",
        "titles": ["boolean"],
        "input_layout": IMAGE_LAYOUT_CONSTRAINT,
    },
    prefer_skip_nested_validation=True,
)
def plot_nearest_neighbors(images_query, images_reference, indices, *, fig=None,
                           titles: bool = True, input_layout: str = "auto"):
    """Show each query image next to its nearest neighbours.

    One row per query: the query in the first column, then its neighbours in
    order of proximity (as in the paper's figure 8).

    Parameters
    ----------
    images_query : array-like
        The query images, (n, H, W), (n, H, W, C) or (n, C, H, W) (see
        ``input_layout``); uint8, floats in [0, 1], or other floats (min-max
        scaled over the batch for display).
    images_reference : array-like
        The images searched, same layout.
    indices : array-like of int, shape (n_queries, n_neighbors)
        Row indices into ``images_reference``, e.g. from
        :func:`nearest_neighbors`.
    fig : matplotlib Figure, default=None
        Figure to draw in; None creates one with ``matplotlib.pyplot``.
    titles : bool, default=True
        Label the columns ("query", "1", "2", ...).
    input_layout : {"auto", "NHWC", "NCHW", "NHW"}, default="auto"
        Layout of both image batches, with the rule of
        :class:`~skdim.DeepInfoMax`: ``"auto"`` reads a 4-D batch as
        channels-last or channels-first from which axis has 1, 3 or 4
        entries, raises a ValueError when both do (e.g. ``(n, 3, 8, 3)``),
        and reads a 3-D batch as grayscale ``(n, H, W)``.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure, holding ``n_queries * (n_neighbors + 1)`` axes.

    Examples
    --------
    >>> from skdim.evaluation import nearest_neighbors, plot_nearest_neighbors
    >>> _, ind = nearest_neighbors(codes_test[:5], codes_train)  # doctest: +SKIP
    >>> fig = plot_nearest_neighbors(X_test[:5], X_train, ind)   # doctest: +SKIP
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "plot_nearest_neighbors needs matplotlib: pip install skdim[plot]"
        ) from exc
    query = _displayable(images_query, "images_query", input_layout)
    reference = _displayable(images_reference, "images_reference", input_layout)
    indices = check_array(indices, dtype=None, input_name="indices")
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"indices must be integers, got dtype {indices.dtype}.")
    if len(indices) != len(query):
        raise ValueError(
            f"indices has {len(indices)} rows but there are {len(query)} query images."
        )
    if indices.min() < 0 or indices.max() >= len(reference):
        raise ValueError(
            f"indices must lie in [0, {len(reference) - 1}] (rows of images_reference)."
        )
    if fig is None:
        import matplotlib.pyplot as plt

        n_rows, n_cols = indices.shape[0], indices.shape[1] + 1
        fig = plt.figure(figsize=(1.2 * n_cols, 1.2 * n_rows))
    axes = fig.subplots(indices.shape[0], indices.shape[1] + 1, squeeze=False)
    cmap = "gray" if query.ndim == 3 else None
    for row, neighbours in enumerate(indices):
        shown = [query[row]] + [reference[j] for j in neighbours]
        for col, (ax, image) in enumerate(zip(axes[row], shown)):
            ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if titles and row == 0:
                ax.set_title("query" if col == 0 else str(col), fontsize=8)
    return fig
