"""Evaluation of learned representations (Hjelm et al. 2019, section 4.1).

The paper scores a representation in several ways, all with the encoder held
fixed unless noted:

* :func:`linear_probe` -- a linear SVM on the features (linear separability);
* :func:`mlp_probe` -- one hidden layer of 200 units with dropout (the
  paper's table 1 classifier, as in the official release);
* :func:`finetune` -- semi-supervised fine-tuning of the whole encoder with a
  small head (:class:`FineTunedClassifier`);
* :func:`reconstruction_ms_ssim` -- a decoder trained with an L2 loss on the
  frozen codes, scored with :func:`ms_ssim` (a proxy for the pixel-level
  information the codes keep);
* :func:`nearest_neighbors` and :func:`plot_nearest_neighbors` -- L1 nearest
  neighbours in code space (appendix A.4).

:func:`probe_table` runs a probe over several models and the paper's three
evaluation layers (``"conv"``, ``"fc"``, ``"y"``); :func:`format_table`
prints the result.

Every function that trains something takes ``random_state`` and seeds a
local :class:`torch.Generator`; none touches the global NumPy or torch RNG.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    check_scalar,
    column_or_1d,
)
from torch import Tensor, nn

from ._ms_ssim import ms_ssim, ms_ssim_tensor
from ._image_layout import images_to_nchw

__all__ = [
    "linear_probe",
    "mlp_probe",
    "probe_table",
    "format_table",
    "finetune",
    "FineTunedClassifier",
    "ms_ssim",
    "reconstruction_ms_ssim",
    "nearest_neighbors",
    "plot_nearest_neighbors",
]
