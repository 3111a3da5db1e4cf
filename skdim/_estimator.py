"""DeepInfoMax: the scikit-learn estimator."""

from __future__ import annotations

import copy
import numbers
import os
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._checkpoint import load_estimator_checkpoint, restore_estimator, save_estimator_checkpoint
from ._data import INPUT_LAYOUTS, Layout, batch_to_tensor, resolve_layout
from ._distributed import (
    broadcast_object,
    distributed_training,
    mean_over_ranks,
    torch_thread_limit,
    training_device,
)
from ._runtime import _seed_from, epoch_progress, resolve_device
from ._state import _restore, _snapshot, _state_to_cpu
from ._io import BatchFeeder, dataset_channel_stats, is_out_of_core, validate_source
from ._training import (
    PRECISIONS,
    DIMConfig,
    DIMObjective,
    build_discriminator,
    build_seeded,
    make_optimizers,
    seeded_generator,
    train_epoch,
)
from .nn.bounds import MI_ESTIMATORS
from .nn.crops import CROPS_ENCODER, build_crop_encoder
from .nn.encoders import ENCODERS, build_encoder, feature_shapes, validate_encoder_output
from .nn.priors import PRIORS

OUTPUT_LAYERS = ("y", "fc", "conv")
LOCAL_CRITICS = ("dot", "concat")


class _CheckedEncoder(torch.nn.Module):
    """Wraps a user-supplied encoder so that it always returns EncoderOutput."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x):
        return validate_encoder_output(self.module(x), x.shape[0])


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
    mi_estimator : {"jsd", "infonce", "dv"}, default="jsd"
        The MI lower bound maximised (paper eqs. 2, 4, 5). Negatives pair an
        image's code with *other* images' features only.
    local_critic : {"dot", "concat"}, default="dot"
        Encode-and-dot-product (paper tables 8-9, the main results) or
        concat-and-convolve (table 7) scoring of (code, local feature) pairs.
    critic_units : int, default=512
        Width of the critics. The paper used 2048 for ``"dot"``: about six
        times slower on CPU for little gain on small data.
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
        ``"dcgan"``). Ignored for a custom encoder.
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
    augment : bool, default=False
        Randomly shift each training image by up to ``side // 8`` pixels
        (zero-pad and crop back to the same size) and flip images
        left-right with probability 1/2 during fit (the paper's STL-10
        setting; signals are only shifted). Seeded by ``random_state``.
    batch_size : int, default=64
        Mini-batch size; also the number of images the negatives come from.
    max_epochs : int, default=20
        Number of passes over the data in :meth:`fit`.
    learning_rate : float, default=1e-4
        Adam learning rate (betas ``(0.5, 0.999)`` as in the official release).
    device : str, default="auto"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA if available).
    precision : {"float32", "bfloat16", "tf32"}, default="float32"
        ``"bfloat16"`` runs the forward pass under autocast with float32
        master weights (CPU and GPU); ``"tf32"`` allows TF32 matmuls on CUDA
        during fit and is float32 elsewhere.
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
        subsampling. The global torch and NumPy RNGs are never touched.
    verbose : int, default=0
        Print a progress bar (tqdm, when installed) with the running loss.
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
        other parameters or data raise a ``ValueError``; delete the
        directory to start over.
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
        and ``"global_mi"`` (MI estimates in nats, greater is better),
        ``"prior"`` (encoder's prior loss), ``"discriminator"`` (the
        discriminator's loss) and ``"loss"`` (the total the encoder
        minimised).
    n_iter_ : int
        Number of epochs trained (cumulative over ``partial_fit`` and
        ``warm_start``).
    device_ : str
        The device training ran on.
    n_features_in_ : int
        ``X.shape[1]`` seen during fit.
    input_shape_ : tuple of int
        Per-sample shape ``X.shape[1:]`` seen during fit.
    layout_ : str
        The resolved input layout.
    channel_mean_, channel_std_ : ndarray of shape (n_channels,)
        Per-channel standardisation learned in fit (after uint8 scaling).

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

    def __init__(
        self,
        n_components=64,
        *,
        alpha=0.0,
        beta=1.0,
        gamma=0.1,
        mi_estimator="jsd",
        local_critic="dot",
        critic_units=512,
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
        batch_size=64,
        max_epochs=20,
        learning_rate=1e-4,
        device="auto",
        precision="float32",
        compile=False,
        random_state=None,
        verbose=0,
        warm_start=False,
        shuffle=True,
        num_workers=0,
        checkpoint_dir=None,
        output_layer="y",
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
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
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

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        def positive_int(name, minimum=1, allow_none=False):
            value = getattr(self, name)
            if allow_none and value is None:
                return
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")

        def non_negative(name):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")

        def choice(name, options):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in options:
                raise ValueError(f"{name} must be one of {options}; got {value!r}.")

        positive_int("n_components")
        positive_int("critic_units")
        positive_int("batch_size", minimum=2)
        positive_int("max_epochs", minimum=0)
        positive_int("n_negatives", allow_none=True)
        for name in ("occlusion", "multiple_globals", "augment"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}.")
        non_negative("coordinate_weight")
        non_negative("relative_coordinate_weight")
        if self.multiple_globals:
            if self.beta == 0:
                raise ValueError(
                    "multiple_globals=True adds a local MI term weighted by beta; beta must be > 0."
                )
            if isinstance(self.encoder, str) and self.encoder not in ("auto", CROPS_ENCODER):
                raise ValueError(
                    f"multiple_globals=True needs the strided-crop encoder (encoder='crops' or "
                    f"'auto'); got encoder={self.encoder!r}."
                )
        for name in ("alpha", "beta", "gamma"):
            non_negative(name)
        if self.alpha == 0 and self.beta == 0 and self.gamma == 0:
            raise ValueError("At least one of alpha, beta and gamma must be > 0; all are 0.")
        if (
            not isinstance(self.learning_rate, numbers.Real)
            or isinstance(self.learning_rate, bool)
            or not 0 < self.learning_rate < np.inf
        ):
            raise ValueError(f"learning_rate must be a finite number > 0; got {self.learning_rate!r}.")
        if not isinstance(self.verbose, numbers.Integral) or self.verbose < 0:
            raise ValueError(f"verbose must be an integer >= 0 or a bool; got {self.verbose!r}.")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"warm_start must be True or False; got {self.warm_start!r}.")
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise ValueError(f"shuffle must be True or False; got {self.shuffle!r}.")
        if not isinstance(self.compile, (bool, np.bool_)):
            raise ValueError(f"compile must be True or False; got {self.compile!r}.")
        positive_int("num_workers", minimum=0)
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, (str, os.PathLike)):
            raise ValueError(
                f"checkpoint_dir must be None or a directory path; got {self.checkpoint_dir!r}."
            )
        choice("mi_estimator", MI_ESTIMATORS)
        choice("local_critic", LOCAL_CRITICS)
        choice("prior", PRIORS)
        choice("precision", PRECISIONS)
        choice("input_layout", INPUT_LAYOUTS)
        choice("output_layer", OUTPUT_LAYERS)
        if not callable(self.encoder):
            choice("encoder", ENCODERS + (CROPS_ENCODER,))
        if self.local_layer is not None and (
            not isinstance(self.local_layer, numbers.Integral) or isinstance(self.local_layer, bool)
        ):
            raise ValueError(f"local_layer must be an integer or None; got {self.local_layer!r}.")
        # Resolve the device before any fitted state is created, so that an
        # unavailable device fails cleanly instead of leaving a half-fitted model.
        resolve_device(self.device)

    def _validate_X(self, X, reset: bool):
        if not reset:
            self._check_sample_shape(getattr(X, "shape", None))
        if is_out_of_core(X):
            # Memory maps, h5py/zarr arrays and datasets: the same checks block
            # by block, never loading X whole; batches are converted to float32
            # as they are read.
            X = validate_source(self, X, reset=reset)
            if not reset:
                self._check_sample_shape(X.shape)
            return X
        X = validate_data(
            self,
            X,
            reset=reset,
            allow_nd=True,
            dtype="numeric",
            ensure_all_finite=True,
            ensure_min_samples=1,
            ensure_min_features=1,
        )
        if X.dtype.kind not in "biuf":
            raise TypeError(
                f"X must hold numbers (bool, integer or float); got dtype {X.dtype}."
            )
        if X.dtype == np.float16 or X.dtype.kind == "b":
            X = X.astype(np.float32)
        if not reset:
            self._check_sample_shape(X.shape)
        return X

    def _check_sample_shape(self, shape) -> None:
        """Compare per-sample shapes; runs before validate_data for arrays so
        that a 3-D/4-D mismatch is not reported as a feature-count mismatch."""
        if shape is None or len(shape) < 2 or not hasattr(self, "input_shape_"):
            return
        sample = tuple(int(s) for s in shape[1:])
        if sample == self.input_shape_:
            return
        if len(sample) == 1 and len(self.input_shape_) == 1:
            # Leave 2-D arrays to validate_data's standard n_features message.
            return
        raise ValueError(
            f"X has per-sample shape {sample}, but DeepInfoMax was fitted on "
            f"per-sample shape {self.input_shape_} (layout {self.layout_!r}); "
            "transform needs the same shape and layout as fit."
        )

    # ---------------------------------------------------------------- building
    def _build(self, layout: Layout, seed: int):
        n_comp = int(self.n_components)

        def make_encoder():
            if callable(self.encoder):
                return _CheckedEncoder(
                    self.encoder(layout.in_channels, layout.spatial, n_comp)
                )
            if self.encoder == CROPS_ENCODER or (self.multiple_globals and self.encoder == "auto"):
                return build_crop_encoder(layout.in_channels, layout.spatial, n_comp, self.local_layer)
            return build_encoder(
                self.encoder, layout.in_channels, layout.spatial, n_comp, self.local_layer
            )

        encoder = build_seeded(seed, make_encoder)
        shapes = feature_shapes(encoder, layout.in_channels, layout.spatial)
        if shapes.y[1] != n_comp:
            raise ValueError(
                f"The encoder returns codes of size {shapes.y[1]}, but n_components={n_comp}."
            )
        objective = build_seeded(
            seed + 1,
            lambda: DIMObjective(
                encoder,
                shapes,
                n_comp,
                use_local=self.beta > 0,
                use_global=self.alpha > 0,
                local_critic=self.local_critic,
                critic_units=int(self.critic_units),
                coordinates=self.coordinate_weight > 0,
                relative_coordinates=self.relative_coordinate_weight > 0,
                multiple_globals=bool(self.multiple_globals),
            ),
        )
        disc = build_seeded(seed + 2, lambda: build_discriminator(n_comp)) if self.gamma > 0 else None
        self._feature_sizes = {
            "y": n_comp,
            "fc": int(shapes.fc[1]),
            "conv": int(np.prod(shapes.conv[1:])),
        }
        return objective, disc

    def _initialize(self, X, seed: int | None = None, stats=None) -> None:
        """Build a fresh model; ``seed`` and ``stats`` come from a checkpoint."""
        layout = resolve_layout(X.shape[1:], self.input_layout, self.image_shape)
        self._check_min_samples(X)
        if seed is None:
            # Under torch.distributed every process must build the same model.
            seed = broadcast_object(_seed_from(self.random_state))
        objective, disc = self._build(layout, seed)
        self.layout_ = layout.layout
        self._layout = layout
        self.input_shape_ = tuple(X.shape[1:])
        self.channel_mean_, self.channel_std_ = (
            dataset_channel_stats(X, layout) if stats is None else stats
        )
        self._objective = objective
        self._discriminator = disc
        self._optimizer_state = None
        self._stream_rng = None
        self._seed = seed
        self.history_ = []
        self.n_iter_ = 0

    @staticmethod
    def _check_min_samples(X) -> None:
        if X.shape[0] < 2:
            raise ValueError(
                f"n_samples={X.shape[0]}: DeepInfoMax needs at least 2 samples, since "
                "negative pairs are drawn from other images in the batch."
            )

    # ---------------------------------------------------------------- training
    def _train(self, X, n_epochs: int, shuffle: bool = True, stream: bool = False):
        device = training_device(resolve_device(self.device))
        objective, disc = self._objective.to(device), self._discriminator
        if disc is not None:
            disc.to(device)
        opt, d_opt = make_optimizers(objective, disc, float(self.learning_rate))
        if self._optimizer_state is not None:
            opt.load_state_dict(self._optimizer_state["main"])
            if d_opt is not None and self._optimizer_state.get("prior") is not None:
                d_opt.load_state_dict(self._optimizer_state["prior"])
            # Adam's moments carry over, but the learning rate is the current
            # parameter, so a schedule via set_params(learning_rate=...) works.
            for optimizer in (opt, d_opt):
                for group in optimizer.param_groups if optimizer is not None else ():
                    group["lr"] = float(self.learning_rate)
        config = DIMConfig(
            alpha=float(self.alpha),
            beta=float(self.beta),
            gamma=float(self.gamma),
            mi_estimator=self.mi_estimator,
            prior=self.prior,
            n_negatives=self.n_negatives,
            precision=self.precision,
            occlusion=bool(self.occlusion),
            coordinate_weight=float(self.coordinate_weight),
            relative_coordinate_weight=float(self.relative_coordinate_weight),
            multiple_globals=bool(self.multiple_globals),
            augment=bool(self.augment),
        )
        feeder = BatchFeeder(
            X, self._layout, self.channel_mean_, self.channel_std_, device,
            batch_size=int(self.batch_size), num_workers=int(self.num_workers),
        )

        # Compiled per fit, never stored: the fitted modules stay plain and picklable.
        forward = torch.compile(objective.mi_terms) if self.compile else None
        tf32 = self.precision == "tf32" and device.type == "cuda"
        previous_tf32 = torch.backends.cuda.matmul.allow_tf32 if tf32 else None
        if tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
        bar = epoch_progress(n_epochs) if self.verbose else None
        try:
            with distributed_training(objective, disc, [opt, d_opt]), torch_thread_limit():
                for _ in range(n_epochs):
                    epoch = self.n_iter_
                    epoch_seed = self._seed + 7919 * (epoch + 1)
                    generator = seeded_generator(epoch_seed)
                    if stream and getattr(self, "_stream_rng", None) is not None:
                        # partial_fit continues one random stream over its calls, so
                        # chunks train like one epoch over their concatenation.
                        generator.set_state(self._stream_rng)
                    plan = feeder.epoch(generator, shuffle, epoch_seed)
                    # An interrupted epoch (divergence, bad data, Ctrl-C) may have
                    # written weights already; roll back to the last completed
                    # epoch, so the fitted state always matches n_iter_ and history_.
                    snapshot = _snapshot(objective, disc, opt, d_opt)
                    try:
                        stats = train_epoch(
                            objective, disc, opt, d_opt, plan.n_samples, plan.get_batch, config,
                            int(self.batch_size), plan.generator, epoch=epoch, shuffle=plan.shuffle,
                            forward=forward,
                        )
                    except BaseException as exc:
                        _restore(snapshot, objective, disc, opt, d_opt)
                        if isinstance(exc, KeyboardInterrupt):
                            warnings.warn(
                                f"DeepInfoMax training was interrupted during epoch {epoch + 1}; "
                                f"the estimator keeps the weights of the last completed epoch "
                                f"(n_iter_={epoch}) and can be used or trained further.",
                                UserWarning, stacklevel=3,
                            )
                        raise
                    finally:
                        feeder.close()
                    stats = {"epoch": epoch + 1, **mean_over_ranks(stats)}
                    self.history_.append(stats)
                    self.n_iter_ += 1
                    if stream:
                        self._stream_rng = generator.get_state()
                    if self.checkpoint_dir is not None:
                        save_estimator_checkpoint(self, X, objective, disc, (opt, d_opt))
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{stats['loss']:.4f}")
        finally:
            if tf32:
                torch.backends.cuda.matmul.allow_tf32 = previous_tf32
            if bar is not None:
                bar.close()
            # Fitted state lives on the CPU so that the estimator pickles and
            # loads anywhere, including machines without a GPU.
            objective.cpu()
            if disc is not None:
                disc.cpu()
            self._optimizer_state = _state_to_cpu(opt, d_opt)
            self.device_ = str(device)
            # Also on error: the model is then fitted with its last good state.
            self._publish()

    def _publish(self) -> None:
        self.encoder_ = self._objective.encoder
        critics = torch.nn.ModuleDict()
        if self._objective.local_critic is not None:
            critics["local"] = self._objective.local_critic
        if self._objective.global_critic is not None:
            critics["global"] = self._objective.global_critic
        if self._discriminator is not None:
            critics["prior"] = self._discriminator
        self.critics_ = critics

    def fit(self, X, y=None):
        """Train the encoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Images ``(n, H, W, C)``, ``(n, C, H, W)`` or ``(n, H, W)``, flat
            images with ``image_shape``, or signals ``(n, L)`` / ``(n, C, L)``.
            uint8 input is scaled to ``[0, 1]``.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : DeepInfoMax
            The fitted estimator.

        Raises
        ------
        skdim._training.DivergenceError
            If a loss term becomes NaN or infinite. The message names the
            epoch and the term; the estimator keeps the weights of the last
            completed epoch (``n_iter_`` and ``history_`` count only those).
        KeyboardInterrupt
            Ctrl-C is re-raised after the estimator is rolled back to the last
            completed epoch, with a warning; the estimator is fitted and can
            be used, or resumed from ``checkpoint_dir``.
        """
        self._check_params()
        fitted = hasattr(self, "encoder_")
        X = self._validate_X(X, reset=not (self.warm_start and fitted))
        self._check_min_samples(X)
        n_epochs = int(self.max_epochs)
        if not (self.warm_start and fitted):
            if self._resume(X, same_rows=True):
                n_epochs = max(0, n_epochs - self.n_iter_)
            else:
                self._initialize(X)
        self._train(X, n_epochs, shuffle=bool(self.shuffle))
        return self

    def _resume(self, X, same_rows: bool) -> bool:
        """Load the checkpoint in ``checkpoint_dir``, if there is one."""
        if self.checkpoint_dir is None:
            return False
        state = load_estimator_checkpoint(self, X, same_rows=same_rows)
        if state is None:
            return False
        restore_estimator(self, X, state)
        return True

    def partial_fit(self, X, y=None):
        """Train for one epoch on ``X``, continuing from the current state.

        The first call initialises the model (and the per-channel
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
        self._check_params()
        fitted = hasattr(self, "encoder_")
        X = self._validate_X(X, reset=not fitted)
        self._check_min_samples(X)
        if not fitted and not self._resume(X, same_rows=False):
            self._initialize(X)
        self._train(X, 1, shuffle=bool(self.shuffle), stream=True)
        return self

    # --------------------------------------------------------------- inference
    def _to_tensor(self, X) -> torch.Tensor:
        """Validated, scaled, standardised ``X`` as a CPU tensor ``(n, C, *S)``."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return batch_to_tensor(X, self._layout, self.channel_mean_, self.channel_std_)

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
        X = self._validate_X(X, reset=False)
        device = resolve_device(self.device)
        encoder = self.encoder_
        if device.type != "cpu":
            # Never move the fitted encoder itself: transform must not mutate self.
            encoder = copy.deepcopy(encoder).to(device)
        was_training = encoder.training
        encoder.eval()
        # Up to 256 rows at a time, fewer for large images (a float32 batch
        # of at most ~64 MiB), never fewer than the training batch.
        row_values = max(1, int(np.prod(self.input_shape_)))
        batch = max(int(self.batch_size), min(256, (64 << 20) // (4 * row_values)))
        out = np.empty((X.shape[0], self._feature_sizes[layer]), dtype=np.float32)
        try:
            with torch.inference_mode():
                for start in range(0, X.shape[0], batch):
                    xb = batch_to_tensor(
                        X[start : start + batch], self._layout, self.channel_mean_,
                        self.channel_std_, device,
                    )
                    feats = getattr(encoder(xb), layer).flatten(1)
                    out[start : start + batch] = feats.float().cpu().numpy()
        finally:
            encoder.train(was_training)
        if not np.isfinite(out).all():
            raise FloatingPointError(
                "The encoder produced non-finite features; the input is far outside "
                "the range seen during fit or the model diverged."
            )
        return out

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

    def __sklearn_is_fitted__(self) -> bool:
        # validate_data sets n_features_in_ before the model is built; a fit
        # that fails after that (bad image_shape, encoder too big for the
        # input) must not look fitted to check_is_fitted.
        return hasattr(self, "encoder_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
