"""Evaluation of learned representations (Hjelm et al. 2019, section 4.1).

The paper scores a representation in several ways, all with the encoder held
fixed unless noted:

* :func:`linear_probe` -- a linear SVM on the features (linear separability);
* :func:`mlp_probe` -- one hidden layer of 200 units with dropout (the
  classifier of the paper's table 1, built as in the official release);
* :func:`finetune` -- semi-supervised fine-tuning of the whole encoder with a
  small head, returning a :class:`FineTunedClassifier`;
* :func:`reconstruction_ms_ssim` -- a decoder trained with an L2 loss on the
  frozen codes, scored with :func:`ms_ssim` (a proxy for the pixel-level
  information the codes keep);
* :func:`nearest_neighbors` and :func:`plot_nearest_neighbors` -- L1 nearest
  neighbours in code space (appendix A.4).

:func:`probe_table` runs a probe over several models and the paper's three
evaluation layers (``"conv"``, ``"fc"``, ``"y"``); :func:`format_table`
prints the result.

Image arguments follow the layout rule of :class:`~skdim.DeepInfoMax`: a
3-D array is a batch of grayscale images ``(n, H, W)``; a 4-D array is
channels-last ``(n, H, W, C)`` or channels-first ``(n, C, H, W)`` according
to which axis has 1, 3 or 4 entries. A shape where both could hold the
channels, such as ``(n, 3, 8, 3)``, raises a ValueError: pass
``input_layout="NHWC"`` or ``"NCHW"`` to the function.

Everything that trains takes ``random_state`` and draws only from local
:class:`torch.Generator` objects; PyTorch's global generator is never used.
An int ``random_state`` leaves NumPy's global RNG alone too; ``None`` draws
one seed from NumPy's global ``RandomState``, as elsewhere in scikit-learn.
The ``device`` parameters accept ``"auto"`` (CUDA when available).
"""

from ._finetune import FineTunedClassifier, finetune
from ._ms_ssim import ms_ssim, reconstruction_ms_ssim
from ._neighbors import nearest_neighbors, plot_nearest_neighbors
from ._probes import format_table, linear_probe, mlp_probe, probe_table

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
