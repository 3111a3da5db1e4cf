"""Input data: layouts, float64 standardisation, out-of-core sources, training batches.

The scikit-learn side of skdim (the estimator, the metrics and the
evaluation tools) takes arrays through this package; the PyTorch core in
:mod:`skdim.nn` sees only tensors.
"""

from ._batches import ArrayBatches, BatchSampler, RowReader
from ._layout import INPUT_LAYOUTS, Layout, flat_image_hint, resolve_layout, to_channels_first
from ._sources import (
    ArraySource,
    RowView,
    SampleSource,
    data_fingerprint,
    dataset_channel_stats,
    is_out_of_core,
    validate_source,
)
from ._validation import Checked, check_input, check_min_samples, warn_if_flat_images
from ._standardize import (
    channel_stats,
    check_finite,
    column_stats,
    rows_per_block,
    scale_factor,
    standardize,
    standardize_columns,
)

__all__ = [
    "ArrayBatches", "ArraySource", "Checked", "check_input", "check_min_samples",
    "warn_if_flat_images", "BatchSampler", "INPUT_LAYOUTS", "Layout", "RowReader",
    "RowView", "SampleSource", "channel_stats", "check_finite", "column_stats",
    "data_fingerprint", "dataset_channel_stats", "flat_image_hint", "is_out_of_core",
    "resolve_layout", "rows_per_block", "scale_factor", "standardize",
    "standardize_columns", "to_channels_first", "validate_source",
]
