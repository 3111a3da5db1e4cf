"""DeepInfoMax: the scikit-learn estimator, a thin shell over :class:`skdim.nn.DIMTrainer`."""

from __future__ import annotations

import contextlib
import copy
import os
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _checkpoints
from ._model import ModelSpec, encode, fitted_modules, lean_copy
from ._data import (
    INPUT_LAYOUTS,
    ArrayBatches,
    check_input,
    check_min_samples,
    dataset_channel_stats,
    resolve_layout,
    standardize,
    warn_if_flat_images,
)
from ._runtime import resolve_device, seed_from
from .nn.augment import AUGMENTATIONS
from .nn.bounds import MI_ESTIMATORS
from .nn.callbacks import EpochLogger, ProgressBar, TimeLimit, WarnOnExplodingLoss
from .nn.crops import CROPS_ENCODER
from .nn.distributed import broadcast_object, training_device
from .nn.encoders import ENCODERS
from .nn.objective import LOCAL_CRITICS, PRECISIONS, DIMConfig
from .nn.priors import PRIORS
from .nn.runtime import resolve_precision
from .nn.schedules import LR_SCHEDULES, LearningRateSchedule

OUTPUT_LAYERS = ("y", "fc", "conv")


class DeepInfoMax(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Deep InfoMax representation learning (Hjelm et al., ICLR 2019).

    Trains a convolutional encoder by maximising mutual information between
    its input and its output code ``Y``: between ``Y`` and every location of a
    local feature map (local DIM, weight ``beta``), between ``Y`` and the
    whole last convolutional map (global DIM, weight ``alpha``), and matches
    the distribution of codes to a prior adversarially (weight ``gamma``)
    -- paper eq. 8. :meth:`transform` returns the codes.

    Parameters
    ----------
    n_components : int, default=64
        Size of the code ``Y``.
    alpha : float, default=0.0
        Weight of the global MI objective.
    beta : float, default=1.0
        Weight of the local MI objective.
    gamma : float, default=0.1
        Weight of prior matching. The defaults are the paper's DIM(L); DIM(G)
        is ``alpha=1, beta=0, gamma=1``.
    mi_estimator : {"jsd", "infonce", "dv"}, default="infonce"
        The MI lower bound maximised (paper eqs. 2, 4, 5). Negatives pair an
        image's code with *other* images' features only. infoNCE is the
        bound of the paper's best DIM(L) (table 1); the paper's code
        defaults to ``"jsd"``.
    local_critic : {"dot", "concat"}, default="dot"
        Encode-and-dot-product (paper tables 8-9, the main results) or
        concat-and-convolve (table 7) scoring of (code, local feature) pairs.
    critic_units : int, default=128
        Width of the critics. The paper used 2048 for ``"dot"`` (and 512 for
        ``"concat"``); at a fixed CPU budget narrower critics see more images
        and learned better codes on every data set of the defaults study
        (see Notes).
    prior : {"uniform", "gaussian", "unit_ball", "unit_sphere"}, default="uniform"
        Prior for the codes. ``"uniform"`` on ``[0, 1]^d`` is matched by
        ``sigmoid(Y)``; ``"unit_sphere"`` by ``Y / ||Y||``; the others by ``Y``.
        ``Y`` itself is never squashed.
    encoder : str or callable, default="auto"
        ``"dcgan"`` (paper, 32x32), ``"alexnet"`` (paper, 64x64), ``"mnist"``
        (official 28x28), ``"conv"`` (any image size), ``"conv1d"`` (signals),
        ``"crops"`` (the strided-crop encoder of paper table 3: a 7x7 grid of
        crops of 25% of the side, see :mod:`skdim.nn.crops`) or ``"auto"``
        (the paper's encoder when the size matches, else ``"conv"``/
        ``"conv1d"``; ``"crops"`` with ``multiple_globals=True``). A callable
        ``factory(in_channels, input_shape, n_components) -> nn.Module`` may be
        given; its module returns ``(local, conv, fc, y)`` (see
        :mod:`skdim.nn.encoders`).
    local_layer : int, default=None
        Index of the convolutional block whose output is the local feature
        map; ``None`` uses the encoder's default (next-to-last for
        ``"dcgan"``; for ``"conv"``/``"conv1d"`` the deepest block up to
        next-to-last that sees at most half of the input, see
        :func:`skdim.nn.encoders.default_local_layer`). Ignored for a custom
        encoder.
    image_shape : tuple, default=None
        Shape of one image when ``X`` is flat ``(n_samples, n_features)``:
        ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``.
    input_layout : {"auto", "NHWC", "NCHW", "NHW", "NCL", "NL"}, default="auto"
        Layout of ``X``. With ``"auto"``, 4-D arrays are images whose channel
        axis (1, 3 or 4 entries) is found from the shape (an ambiguous shape
        raises an error), 3-D arrays are grayscale images ``(n, H, W)``, and
        2-D arrays are images of ``image_shape`` if given, else 1-channel
        signals of length ``n_features``. Signals with channels need
        ``"NCL"``.
    n_negatives : int, default=None
        Number of negative pairs kept per code (a random subset); ``None``
        uses every location of every other image in the batch.
    occlusion : bool, default=False
        Compute the code scored by the critics from a randomly occluded
        input while the local features come from the full input (paper
        section 4.3). Every occlusion leaves one block of ``10/32`` of the
        input side visible and one fully occluded (10x10 on 32x32, the local
        features' receptive field). The codes that :meth:`transform` returns
        and the prior matches are those of the full input.
    coordinate_weight : float, default=0.0
        Weight of absolute coordinate prediction: an MLP (two hidden layers
        of 512, batch norm, ReLU) predicts each local feature's grid position
        from it and the code; one cross-entropy per axis (paper section 4.3,
        appendix A.7). Logged as ``"coordinate"`` in ``history_``.
    relative_coordinate_weight : float, default=0.0
        Weight of relative coordinate prediction: the offset from one random
        source location per image to every other location, given the code
        and both local features. Logged as ``"relative_coordinate"``.
    multiple_globals : bool, default=False
        Also compute codes from random 3x3 blocks of the 7x7 local map and
        score them against the full local map with one critic shared by all
        block positions (paper table 3), weighted by ``beta`` (which must be
        > 0). Needs the strided-crop encoder: ``encoder="auto"`` then builds
        ``"crops"``, and ``"crops"`` (or a custom encoder with a
        ``summarize(local_map)`` method) is the only one accepted. Logged as
        ``"multiple_globals_mi"``.
    augment : bool or {"crop_flip", "strong"}, default=False
        Augment each training batch (seeded by ``random_state``; never at
        :meth:`transform`). ``True`` or ``"crop_flip"``: shift each image by
        up to ``side // 8`` pixels (zero-pad and crop back to the same size)
        and flip it left-right with probability 1/2 (the paper's STL-10
        setting; signals are only shifted). ``"strong"``: a random crop of
        20-100% of the area resized back to the input size, flips, and
        random brightness, contrast, saturation and grayscale (the
        augmentations of AMDIM and SimCLR, applied to the standardised
        input; see :mod:`skdim.nn.augment`).
    cross_view : bool, default=False
        AMDIM's objective (Bachman et al., 2019) instead of scoring a code
        against its own input's features: every step draws two augmented
        views of each input (``augment`` must be on) and scores the code of
        each view against the local (and, with ``alpha``, global) features
        of the other view, averaging both directions. The codes must then
        carry what the views share rather than what one augmentation
        leaves. A step encodes both views (twice the encoder's cost); the
        prior matches the codes of both. Works with the local, global and
        prior terms only (not with ``occlusion``, the coordinate terms or
        ``multiple_globals``).
    batch_size : int, default=64
        Mini-batch size; also the number of images the negatives come from.
    max_epochs : int, default=20
        Number of passes over the data in :meth:`fit`.
    learning_rate : float, default=1e-3
        Adam learning rate (betas ``(0.5, 0.999)`` as in the official release,
        which uses 1e-4).
    learning_rate_schedule : {"constant", "cosine"}, default="constant"
        ``"constant"`` trains at ``learning_rate`` throughout (the paper).
        ``"cosine"`` warms up linearly over the first 2% of the run, then
        anneals the rate of both optimizers to zero along a half cosine
        (:mod:`skdim.nn.schedules`). The run ends at ``max_epochs`` (counted
        from the start of this fit under ``warm_start``), at ``max_time``, or
        when a callback with a ``progress()`` method (a
        :class:`~skdim.nn.callbacks.TimeLimit`, e.g. on CPU time) runs out:
        the cosine follows whichever comes first, so a time-limited fit
        also ends annealed. A resumed checkpoint continues the same curve
        (``max_epochs`` must then be that of the checkpointed run; a
        time limit restarts with the resumed fit). :meth:`partial_fit` has no
        horizon and always uses the constant rate.
    device : str, default="auto"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA if available).
    precision : {"float32", "bfloat16", "tf32", "auto"}, default="auto"
        ``"bfloat16"`` runs the forward pass under autocast with float32
        master weights (CPU and GPU); ``"tf32"`` allows TF32 matmuls on CUDA
        during fit and is float32 elsewhere; ``"auto"`` is ``"bfloat16"``
        where the device computes it natively (CUDA compute capability >= 8.0,
        CPUs with AVX512-BF16 or AMX) and ``"float32"`` elsewhere. The value
        used is ``precision_``. :meth:`transform` always runs in float32.
    compile : bool, default=False
        Compile the training forward pass (encoder, critics and bounds) with
        :func:`torch.compile` during fit. The first steps of a fit pay for
        compilation (tens of seconds; inductor needs a C++ compiler on CPU
        and Triton on CUDA); the losses match eager training to float
        rounding. The fitted modules and :meth:`transform` stay eager, so
        the estimator pickles as usual. Worth it for long fits, mostly on
        GPUs.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, prior samples and negative
        subsampling, through explicit generators: torch's global generator is
        never read or changed, so fits in several threads at once are
        reproducible. As elsewhere in scikit-learn, an int gives the same
        model every time; ``None`` draws one seed from NumPy's global random
        state (so ``np.random.seed`` makes it repeatable), a ``RandomState``
        instance is advanced by one draw.
    verbose : int, default=0
        ``1``: a progress bar that moves with every batch, with images/s and
        the running loss (tqdm, when installed); ``2``: one line per epoch
        (for logs).
    warm_start : bool, default=False
        Continue training the fitted model on the next :meth:`fit`.
    shuffle : bool, default=True
        Draw the mini-batches of each epoch in a new random order (seeded by
        ``random_state``). ``False`` takes consecutive rows, so that
        :meth:`partial_fit` over successive chunks trains the same model as
        one epoch of :meth:`fit` over their concatenation.
    num_workers : int, default=0
        ``DataLoader`` worker processes that read (and decode) the next
        batches in the background during fit; ``0`` reads in the training
        process. Useful for slow storage or a ``torch`` ``Dataset`` that
        decodes images; results do not depend on it.
    checkpoint_dir : str or path-like, default=None
        Directory where the full training state (weights, optimizers, random
        generator state, epoch, history) is written atomically at the end of
        every epoch. When it already holds a checkpoint written with the same
        parameters (``max_epochs``, ``verbose``, ``device``, ``num_workers``
        and ``warm_start`` may differ) and the same data, :meth:`fit` resumes
        from it and trains the remaining ``max_epochs - n_iter_`` epochs,
        ending with the same weights as an uninterrupted run. Checkpoints with
        other parameters or data, or holding more epochs than
        ``max_epochs``, raise a ``ValueError``; damaged files raise a
        :class:`~skdim.nn.checkpoint.CheckpointError`; delete the directory to
        start over. A fit holds a lock on the directory: a second fit writing
        into it at the same time gets a ``CheckpointError``.
    max_time : float, default=None
        Stop training once this many seconds of wall time have passed since
        :meth:`fit` was called (checked after every batch, so data checks
        and statistics count too), even mid-epoch; ``None`` trains all
        ``max_epochs``. The
        last epoch is then shorter and marked ``"stopped": True`` in
        ``history_``; the model is fitted and checkpointed as after any epoch.
    callbacks : list of skdim.nn.callbacks.Callback, default=None
        More callbacks for the training loop (:mod:`skdim.nn.callbacks`),
        called after the estimator's own (progress, time limit, checkpoint):
        e.g. ``[TimeLimit(600, clock=time.process_time)]`` for a budget of
        CPU-seconds, or an early-stopping or logging callback of your own.
        A callback that sets ``trainer.stop_training`` ends the fit after
        the current batch, with a fitted model.
    output_layer : {"y", "fc", "conv"}, default="y"
        What :meth:`transform` returns: the code, the fully connected layer,
        or the flattened last convolutional map (the paper's three
        evaluation layers).

    Attributes
    ----------
    encoder_ : torch.nn.Module
        The trained encoder, on the CPU.
    critics_ : torch.nn.ModuleDict
        The MI critics and the prior discriminator that were trained.
    history_ : list of dict
        One dict per epoch with the mean of each active term: ``"local_mi"``
        and ``"global_mi"`` (the ``mi_estimator``'s bound, greater is
        better: nats for ``"infonce"`` and ``"dv"``; for ``"jsd"`` a
        Jensen-Shannon score: at most 0 (a perfect critic), ``-2 log 2`` for
        a critic that cannot tell the pairs apart, and lower while it is
        confidently wrong (it can start near -8 on CIFAR-10); not an amount
        of information), ``"prior"`` (encoder's prior loss),
        ``"discriminator"`` (the discriminator's loss) and ``"loss"`` (the
        total the encoder minimised).
    n_iter_ : int
        Number of epochs trained (cumulative over ``partial_fit`` and
        ``warm_start``).
    t_ : int
        Number of training samples seen (the batch sizes of all steps,
        cumulative like ``n_iter_``), as in scikit-learn's MLP.
    device_ : str
        The device training ran on.
    precision_ : str
        The precision training ran in (``precision`` with ``"auto"``
        resolved); also ``"precision"`` in each entry of ``history_``.
    n_features_in_ : int
        ``X.shape[1]`` seen during fit.
    input_shape_ : tuple of int
        Per-sample shape ``X.shape[1:]`` seen during fit.
    layout_ : str
        The resolved input layout.
    channel_mean_, channel_std_ : ndarray of shape (n_channels,)
        Per-channel standardisation learned in fit (after uint8 scaling), in
        float64; a constant channel has a unit std.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when ``X`` was a DataFrame with string column names.

    Notes
    -----
    A :meth:`fit` or :meth:`partial_fit` that raises (bad input, divergence,
    Ctrl-C, a checkpoint that cannot be written) leaves the estimator
    exactly as it was: a fitted model keeps transforming as before, an
    unfitted one stays unfitted. :meth:`transform` only reads the fitted
    model (its modules stay in eval mode), so one fitted estimator can serve
    many threads at once.

    ``fit_transform`` encodes ``X`` again after training rather than reusing
    the codes computed during the last epoch: those come from BatchNorm in
    training mode (batch statistics) and from weights that changed during
    the epoch, so they differ from what :meth:`transform` returns.

    A fitted estimator pickles with its training state (optimizers
    included), so that :meth:`partial_fit` and ``warm_start`` can continue
    from it; :meth:`serving_copy` gives a copy that holds only what
    :meth:`transform` needs.

    Defaults that differ from the paper's code, chosen by the defaults study
    (``benchmarks/bench_defaults.py``; the user guide's benchmarks page has
    the table): ``mi_estimator="infonce"`` (the paper's best DIM(L), table 1;
    its code defaults to JSD), ``learning_rate=1e-3`` (1e-4 in the release),
    ``critic_units=128`` (2048), ``precision="auto"`` (float32) and
    ``max_epochs=20`` (1000). At equal CPU time they learned better codes on
    every data set of the study. The size-agnostic encoders pick a local
    map that sees at most half of the input (block 0 on 8x8 digits; the
    paper's 32x32 encoder is unchanged). The objective is the paper's DIM(L)
    (``alpha=0, beta=1, gamma=0.1``, uniform prior, ``batch_size=64``); every
    setting of the paper is reachable through the parameters, e.g.
    ``DeepInfoMax(mi_estimator="jsd", learning_rate=1e-4, critic_units=2048,
    precision="float32")`` for the release's recipe.

    See Also
    --------
    skdim.MINEScorer : Scores representations by estimated I(X; Y).
    skdim.NDMScorer : Scores the dependence between code dimensions.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdim import DeepInfoMax
    >>> X = load_digits().images[:200]
    >>> dim = DeepInfoMax(n_components=16, max_epochs=1, random_state=0)
    >>> dim.fit_transform(X).shape
    (200, 16)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, np.inf, closed="left")],
        "beta": [Interval(Real, 0, np.inf, closed="left")],
        "gamma": [Interval(Real, 0, np.inf, closed="left")],
        "mi_estimator": [StrOptions(set(MI_ESTIMATORS))],
        "local_critic": [StrOptions(set(LOCAL_CRITICS))],
        "critic_units": [Interval(Integral, 1, None, closed="left")],
        "prior": [StrOptions(set(PRIORS))],
        "encoder": [StrOptions(set(ENCODERS) | {CROPS_ENCODER}), callable],
        "local_layer": [Interval(Integral, None, None, closed="neither"), None],
        "image_shape": ["array-like", None],
        "input_layout": [StrOptions(set(INPUT_LAYOUTS))],
        "n_negatives": [Interval(Integral, 1, None, closed="left"), None],
        "occlusion": ["boolean"],
        "coordinate_weight": [Interval(Real, 0, np.inf, closed="left")],
        "relative_coordinate_weight": [Interval(Real, 0, np.inf, closed="left")],
        "multiple_globals": ["boolean"],
        "augment": ["boolean", StrOptions(set(AUGMENTATIONS))],
        "cross_view": ["boolean"],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, np.inf, closed="neither")],
        "learning_rate_schedule": [StrOptions(set(LR_SCHEDULES))],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS) | {"auto"})],
        "compile": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "shuffle": ["boolean"],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "checkpoint_dir": [str, os.PathLike, None],
        "output_layer": [StrOptions(set(OUTPUT_LAYERS))],
        "max_time": [Interval(Real, 0, None, closed="neither"), None],
        "callbacks": [list, tuple, None],
    }

    def __init__(
        self,
        n_components=64,
        *,
        alpha=0.0,
        beta=1.0,
        gamma=0.1,
        mi_estimator="infonce",
        local_critic="dot",
        critic_units=128,
        prior="uniform",
        encoder="auto",
        local_layer=None,
        image_shape=None,
        input_layout="auto",
        n_negatives=None,
        occlusion=False,
        coordinate_weight=0.0,
        relative_coordinate_weight=0.0,
        multiple_globals=False,
        augment=False,
        cross_view=False,
        batch_size=64,
        max_epochs=20,
        learning_rate=1e-3,
        learning_rate_schedule="constant",
        device="auto",
        precision="auto",
        compile=False,
        random_state=None,
        verbose=0,
        warm_start=False,
        shuffle=True,
        num_workers=0,
        checkpoint_dir=None,
        output_layer="y",
        max_time=None,
        callbacks=None,
    ):
        self.n_components = n_components
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.mi_estimator = mi_estimator
        self.local_critic = local_critic
        self.critic_units = critic_units
        self.prior = prior
        self.encoder = encoder
        self.local_layer = local_layer
        self.image_shape = image_shape
        self.input_layout = input_layout
        self.n_negatives = n_negatives
        self.occlusion = occlusion
        self.coordinate_weight = coordinate_weight
        self.relative_coordinate_weight = relative_coordinate_weight
        self.multiple_globals = multiple_globals
        self.augment = augment
        self.cross_view = cross_view
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.device = device
        self.precision = precision
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.shuffle = shuffle
        self.num_workers = num_workers
        self.checkpoint_dir = checkpoint_dir
        self.output_layer = output_layer
        self.max_time = max_time
        self.callbacks = callbacks

    # ------------------------------------------------------------ parameters
    def _config(self, device: torch.device) -> DIMConfig:
        """The objective's configuration; checks the rules the constraints cannot express."""
        for name in ("n_components", "critic_units", "batch_size", "max_epochs", "n_negatives",
                     "num_workers", "local_layer"):
            if isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"The {name!r} parameter of DeepInfoMax must be an int, not a "
                                 f"bool. Got {getattr(self, name)!r} instead.")
        if self.alpha == 0 and self.beta == 0 and self.gamma == 0:
            raise ValueError("At least one of alpha, beta and gamma must be > 0; all are 0.")
        if self.multiple_globals and self.beta == 0:
            raise ValueError("multiple_globals=True adds a local MI term weighted by beta; beta must be > 0.")
        return DIMConfig(
            alpha=float(self.alpha), beta=float(self.beta), gamma=float(self.gamma),
            mi_estimator=self.mi_estimator, prior=self.prior, n_negatives=self.n_negatives,
            precision=resolve_precision(self.precision, device), occlusion=bool(self.occlusion),
            coordinate_weight=float(self.coordinate_weight),
            relative_coordinate_weight=float(self.relative_coordinate_weight),
            multiple_globals=bool(self.multiple_globals),
            augment=self.augment if isinstance(self.augment, str) else bool(self.augment),
            cross_view=bool(self.cross_view),
        )

    # --------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the encoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Images ``(n, H, W, C)``, ``(n, C, H, W)`` or ``(n, H, W)``, flat
            images with ``image_shape``, or signals ``(n, L)`` / ``(n, C, L)``;
            also memory maps, h5py/zarr arrays and torch Datasets (read in
            batches). uint8 input is scaled to ``[0, 1]``.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : DeepInfoMax
            The fitted estimator.

        Raises
        ------
        skdim.nn.trainer.DivergenceError
            If a loss term becomes NaN or infinite; the message names the
            epoch and the term. The estimator is left as it was.
        """
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Train for one epoch on ``X``, continuing from the current state.

        The first call builds the model (and the per-channel
        standardisation, from this first ``X``: it stays fixed afterwards, so
        the first chunk should be representative). Successive calls continue
        one random stream, so with ``shuffle=False`` and chunk sizes that are
        multiples of ``batch_size``, partial fits over chunks train the same
        model as one epoch of :meth:`fit` over their concatenation (given the
        same standardisation). Each call counts as one epoch in ``n_iter_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            A chunk of training data, in the layout used for :meth:`fit`.
        y : None
            Ignored.

        Returns
        -------
        self : DeepInfoMax
            The estimator.
        """
        return self._fit(X, incremental=True)

    def _fit(self, X, incremental: bool):
        started = time.monotonic()  # max_time counts from here
        if incremental:  # _fit_context validates partial_fit's parameters only once
            self._validate_params()
        device = training_device(resolve_device(self.device))
        config = self._config(device)
        continuing = hasattr(self, "encoder_") and (incremental or self.warm_start)
        if continuing and self._trainer is None:
            raise ValueError("This estimator is a serving copy without training state; "
                             "partial_fit and warm_start need the estimator it was copied from.")
        data = check_input(self, X, reset=not continuing)
        X = data.X
        check_min_samples(X.shape[0], type(self).__name__)
        layout = resolve_layout(X.shape[1:], self.input_layout, self.image_shape)
        warn_if_flat_images(layout, self.input_layout, self.image_shape)
        spec = ModelSpec.of(self, layout, config)
        if continuing:
            self._check_same_model(layout, spec)
        store = _checkpoints.Store(self, X, same_rows=not incremental) if self.checkpoint_dir else None
        try:
            with store.lock() if store else contextlib.nullcontext():
                trainer, stats, spec, epochs = self._start(X, layout, spec, store, continuing, incremental)
                trainer.config = config
                trainer.compile = bool(self.compile)
                trainer.set_learning_rate(self.learning_rate)
                batches = ArrayBatches(X, layout, *stats, batch_size=int(self.batch_size),
                                       generator=trainer.generator, shuffle=bool(self.shuffle),
                                       num_workers=int(self.num_workers))
                callbacks = self._callbacks(store, stats, started, incremental, continuing)
                trainer.to(device).fit(batches, epochs, callbacks, stream=incremental)
        except KeyboardInterrupt:
            warnings.warn(
                "DeepInfoMax.fit was interrupted; the estimator is left as it was before the "
                "call. " + ("The completed epochs are in checkpoint_dir: fit again to resume."
                            if store else "Set checkpoint_dir to keep completed epochs, or "
                            "max_time to stop a fit by time."), UserWarning, stacklevel=3)
            raise
        trainer.to("cpu")
        fitted = fitted_modules(trainer, trainer.encoder, spec)
        fitted.update(
            history_=[dict(h) for h in trainer.history], n_iter_=trainer.epoch, t_=trainer.samples,
            _layout=layout,
            layout_=layout.layout, input_shape_=data.input_shape, n_features_in_=data.n_features_in,
            channel_mean_=np.asarray(stats[0], np.float64), channel_std_=np.asarray(stats[1], np.float64),
            device_=str(device), precision_=config.precision,
        )
        if data.feature_names_in is not None:
            fitted["feature_names_in_"] = data.feature_names_in
        else:
            self.__dict__.pop("feature_names_in_", None)
        self.__dict__.update(fitted)  # publish in one step
        return self

    def _start(self, X, layout, spec, store, continuing: bool, incremental: bool):
        """``(trainer, stats, spec, epochs)``: a copy of the fitted model, a checkpoint, or a new one."""
        epochs = 1 if incremental else int(self.max_epochs)
        if continuing:  # a copy: the fitted model stays intact if training fails
            return self._trainer.copy(), (self.channel_mean_, self.channel_std_), self._spec, epochs
        lr = float(self.learning_rate)
        resumed = store.resume(lambda seed: spec.trainer(seed, lr)) if store else None
        if resumed is not None:
            trainer, stats = resumed
            return trainer, stats, spec, epochs if incremental else epochs - trainer.epoch
        seed = broadcast_object(seed_from(self.random_state))
        return spec.trainer(seed, lr), dataset_channel_stats(X, layout), spec, epochs

    def _check_same_model(self, layout, spec: ModelSpec) -> None:
        """warm_start and partial_fit continue the fitted model: its input and architecture."""
        if layout != self._layout:
            raise ValueError(
                f"X with input_layout={self.input_layout!r} and image_shape={self.image_shape!r} "
                f"reads as {layout}, but the model was fitted on {self._layout}; continue "
                "training with the layout parameters of the first fit."
            )
        changed = spec.changed(self._spec)
        if changed:
            raise ValueError(
                f"{', '.join(changed)} changed since the model was built; warm_start and "
                "partial_fit continue the fitted model, so refit without warm_start to "
                "change its architecture."
            )

    def _callbacks(self, store, stats, started: float, incremental: bool, continuing: bool) -> list:
        callbacks = [WarnOnExplodingLoss(category=ConvergenceWarning)]
        if self.verbose:
            callbacks.append(ProgressBar(name="DeepInfoMax") if self.verbose == 1
                             else EpochLogger(name="DeepInfoMax"))
        limits = []
        if self.max_time is not None:
            left = self.max_time - (time.monotonic() - started)
            limits.append(TimeLimit(max(left, 1e-9)))
        callbacks += limits
        if store is not None:
            callbacks.append(store.callback(stats))
        callbacks += list(self.callbacks or ())
        if self.learning_rate_schedule == "cosine" and not incremental and self.max_epochs > 0:
            # Last, so that every limit has started; user callbacks with a
            # progress() (a TimeLimit on CPU time) are horizons too. A fresh
            # or resumed run began at epoch 0, a warm start at this fit.
            limits += [c for c in self.callbacks or () if callable(getattr(c, "progress", None))]
            callbacks.append(LearningRateSchedule(int(self.max_epochs), limits=limits,
                                                  start_epoch=None if continuing else 0))
        return callbacks

    # ------------------------------------------------------------- inference
    def preprocess(self, X) -> torch.Tensor:
        """``X`` validated, scaled and standardised as the encoder sees it.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input in the layout seen during fit.

        Returns
        -------
        x : torch.Tensor of shape (n_samples, C, H, W) or (n_samples, C, L)
            float32, on the CPU: the input of :attr:`encoder_` (for
            fine-tuning or custom heads).
        """
        check_is_fitted(self)
        X = check_input(self, X, reset=False).X
        return standardize(X, self._layout, self.channel_mean_, self.channel_std_)

    def extract_features(self, X, layer: str = "y") -> np.ndarray:
        """Features of ``X`` at one of the paper's evaluation layers.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input in the layout seen during fit.
        layer : {"y", "fc", "conv"}, default="y"
            The code, the fully connected layer or the flattened last
            convolutional map.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_layer), dtype float32
        """
        check_is_fitted(self)
        if layer not in OUTPUT_LAYERS:
            raise ValueError(f"layer must be one of {OUTPUT_LAYERS}; got {layer!r}.")
        X = check_input(self, X, reset=False).X
        return encode(self.encoder_, X, self._layout, self.channel_mean_, self.channel_std_, layer,
                      self._feature_sizes[layer], resolve_device(self.device), int(self.batch_size))

    def transform(self, X):
        """Encode ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input in the layout seen during fit.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out), dtype float32
            The ``output_layer`` features (the codes ``Y`` by default).
        """
        return self.extract_features(X, self.output_layer)

    @property
    def _n_features_out(self):
        return self._feature_sizes[self.output_layer]

    # ------------------------------------------------------------ persistence
    def serving_copy(self) -> "DeepInfoMax":
        """A fitted copy holding only what :meth:`transform` needs.

        The copy keeps the encoder, the standardisation and the history, and
        drops the critics, the prior discriminator and both optimizers' state
        (most of a pickle: 47 of 71 MB for the paper's CIFAR-10 model). It
        transforms exactly like this estimator; :meth:`partial_fit` and
        ``warm_start`` need the full estimator.

        Returns
        -------
        estimator : DeepInfoMax
        """
        check_is_fitted(self)
        lean = copy.copy(self)
        lean.__dict__.update(fitted_modules(None, copy.deepcopy(self.encoder_), self._spec,
                                            self._feature_sizes))
        return lean

    def __getstate__(self):
        # One state format: the trainer's state_dict (as in checkpoints).
        state = dict(super().__getstate__())
        trainer, encoder = state.pop("_trainer", None), state.pop("encoder_", None)
        state.pop("critics_", None)
        if trainer is not None:
            state["_trainer_state"] = trainer.state_dict()
        elif encoder is not None:
            state["_encoder_state"] = lean_copy(encoder)
        return state

    def __setstate__(self, state):
        trainer_state = state.pop("_trainer_state", None)
        encoder_state = state.pop("_encoder_state", None)
        super().__setstate__(state)
        try:
            if trainer_state is not None:
                trainer = self._spec.trainer(int(trainer_state["seed"]), float(self.learning_rate))
                trainer.load_state_dict(trainer_state)
                self.__dict__.update(fitted_modules(trainer, trainer.encoder, self._spec,
                                                    self._feature_sizes))
            elif encoder_state is not None:
                encoder = self._spec.encoder_only()
                encoder.load_state_dict(encoder_state)
                self.__dict__.update(fitted_modules(None, encoder, self._spec, self._feature_sizes))
        except (RuntimeError, ValueError) as exc:
            # A size-mismatch message alone does not say what to do.
            raise ValueError(
                "The pickled DeepInfoMax holds weights that do not fit the encoder this version of "
                "skdim builds for its parameters and input shape (it was saved by a version with "
                "another architecture, e.g. before the full-resolution first block of the 'conv' "
                f"encoders for inputs smaller than 32); refit it with this version. ({exc})"
            ) from exc

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "encoder_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
