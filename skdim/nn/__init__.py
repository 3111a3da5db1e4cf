"""The PyTorch core of skdim: Deep InfoMax without scikit-learn.

Everything needed to train DIM from a plain PyTorch loop lives here and
imports nothing from scikit-learn or from skdim's estimator modules:

* :class:`DIMTrainer` (:mod:`skdim.nn.trainer`) -- the training state and
  loop: encoder, critics, prior discriminator, optimizers, generator,
  counters, history; ``state_dict()`` / ``load_state_dict()``;
  ``fit(batches, epochs, callbacks=...)`` over any iterable of tensors.
* :mod:`skdim.nn.callbacks` -- progress, time limits, checkpoints, rollback;
  :mod:`skdim.nn.schedules` -- a warm-up and cosine learning-rate schedule.
* :mod:`skdim.nn.objective` -- :class:`DIMConfig`, :class:`DIMObjective`,
  :func:`build_model`: the loss terms of paper eq. 8 for one batch.
* Building blocks: :mod:`~skdim.nn.encoders`, :mod:`~skdim.nn.critics`,
  :mod:`~skdim.nn.bounds` (the MI bounds, shared with the MINE and NDM
  estimators of :mod:`~skdim.nn.mine` and :mod:`~skdim.nn.ndm`),
  :mod:`~skdim.nn.priors` and the paper's extensions
  (:mod:`~skdim.nn.occlusion`, :mod:`~skdim.nn.coordinates`,
  :mod:`~skdim.nn.multiple_globals`, :mod:`~skdim.nn.crops`,
  :mod:`~skdim.nn.augment`).
* Infrastructure: :mod:`~skdim.nn.checkpoint` (atomic, verified, locked
  files), :mod:`~skdim.nn.distributed` (data-parallel training),
  :mod:`~skdim.nn.seeding` (initialisation from explicit generators),
  :mod:`~skdim.nn.sampling` (mini-batches), :mod:`~skdim.nn.runtime`
  (process-wide settings, restored after a fit).
"""

from . import callbacks
from .callbacks import Callback
from .checkpoint import CheckpointError
from .objective import DIMConfig, DIMObjective, build_model
from .trainer import DIMTrainer, DivergenceError

__all__ = ["DIMTrainer", "DIMConfig", "DIMObjective", "DivergenceError", "CheckpointError",
           "Callback", "build_model", "callbacks"]
