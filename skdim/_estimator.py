"""DeepInfoMax: the scikit-learn estimator."""

from __future__ import annotations

import copy
import numbers
import sys

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._data import INPUT_LAYOUTS, Layout, batch_to_tensor, channel_stats, resolve_layout
from ._training import (
    PRECISIONS,
    DIMConfig,
    DIMObjective,
    DivergenceError,
    build_discriminator,
    build_seeded,
    make_optimizers,
    seeded_generator,
    train_epoch,
)
from .nn.bounds import MI_ESTIMATORS
from .nn.encoders import ENCODERS, EncoderOutput, build_encoder, feature_shapes, validate_encoder_output
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


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings are checked."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0'; got {device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    return dev


def _seed_from(random_state) -> int:
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


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
        (official 28x28), ``"conv"`` (any image size), ``"conv1d"`` (signals)
        or ``"auto"`` (the paper's encoder when the size matches, else
        ``"conv"``/``"conv1d"``). A callable
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
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, prior samples and negative
        subsampling. The global torch and NumPy RNGs are never touched.
    verbose : int, default=0
        Print a progress bar (tqdm, when installed) with the running loss.
    warm_start : bool, default=False
        Continue training the fitted model on the next :meth:`fit`.
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
        batch_size=64,
        max_epochs=20,
        learning_rate=1e-4,
        device="auto",
        precision="float32",
        random_state=None,
        verbose=0,
        warm_start=False,
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
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
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
        choice("mi_estimator", MI_ESTIMATORS)
        choice("local_critic", LOCAL_CRITICS)
        choice("prior", PRIORS)
        choice("precision", PRECISIONS)
        choice("input_layout", INPUT_LAYOUTS)
        choice("output_layer", OUTPUT_LAYERS)
        if not callable(self.encoder):
            choice("encoder", ENCODERS)
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
            ),
        )
        disc = build_seeded(seed + 2, lambda: build_discriminator(n_comp)) if self.gamma > 0 else None
        self._feature_sizes = {
            "y": n_comp,
            "fc": int(shapes.fc[1]),
            "conv": int(np.prod(shapes.conv[1:])),
        }
        return objective, disc

    def _initialize(self, X) -> None:
        layout = resolve_layout(X.shape[1:], self.input_layout, self.image_shape)
        self._check_min_samples(X)
        seed = _seed_from(self.random_state)
        objective, disc = self._build(layout, seed)
        self.layout_ = layout.layout
        self._layout = layout
        self.input_shape_ = tuple(X.shape[1:])
        self.channel_mean_, self.channel_std_ = channel_stats(X, layout)
        self._objective = objective
        self._discriminator = disc
        self._optimizer_state = None
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
    def _train(self, X, n_epochs: int, shuffle: bool = True):
        device = resolve_device(self.device)
        objective, disc = self._objective.to(device), self._discriminator
        if disc is not None:
            disc.to(device)
        opt, d_opt = make_optimizers(objective, disc, float(self.learning_rate))
        if self._optimizer_state is not None:
            opt.load_state_dict(self._optimizer_state["main"])
            if d_opt is not None and self._optimizer_state.get("prior") is not None:
                d_opt.load_state_dict(self._optimizer_state["prior"])
        config = DIMConfig(
            alpha=float(self.alpha),
            beta=float(self.beta),
            gamma=float(self.gamma),
            mi_estimator=self.mi_estimator,
            prior=self.prior,
            n_negatives=self.n_negatives,
            precision=self.precision,
        )
        layout, mean, std = self._layout, self.channel_mean_, self.channel_std_

        def get_batch(idx):
            return batch_to_tensor(X[idx], layout, mean, std, device)

        tf32 = self.precision == "tf32" and device.type == "cuda"
        previous_tf32 = torch.backends.cuda.matmul.allow_tf32 if tf32 else None
        if tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
        bar = self._progress(n_epochs)
        try:
            for _ in range(n_epochs):
                epoch = self.n_iter_
                generator = seeded_generator(self._seed + 7919 * (epoch + 1))
                # A diverged epoch may already have written non-finite or huge
                # weights (the discriminator steps before the encoder's loss is
                # checked); roll back to the last completed epoch, so the
                # fitted state always matches n_iter_ and history_.
                snapshot = _snapshot(objective, disc, opt, d_opt)
                try:
                    stats = train_epoch(
                        objective, disc, opt, d_opt, X.shape[0], get_batch, config,
                        int(self.batch_size), generator, epoch=epoch, shuffle=shuffle,
                    )
                except DivergenceError:
                    _restore(snapshot, objective, disc, opt, d_opt)
                    raise
                stats = {"epoch": epoch + 1, **stats}
                self.history_.append(stats)
                self.n_iter_ += 1
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

    def _progress(self, n_epochs: int):
        if not self.verbose or n_epochs == 0:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _PrintProgress(n_epochs)
        return tqdm(total=n_epochs, desc="DeepInfoMax", unit="epoch", file=sys.stderr)

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
        """
        self._check_params()
        fitted = hasattr(self, "encoder_")
        X = self._validate_X(X, reset=not (self.warm_start and fitted))
        self._check_min_samples(X)
        if not (self.warm_start and fitted):
            self._initialize(X)
        self._train(X, int(self.max_epochs))
        return self

    def partial_fit(self, X, y=None):
        """Train for one epoch on ``X``, continuing from the current state.

        The first call initialises the model (and the per-channel
        standardisation, from this first ``X``).

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
        if not fitted:
            self._initialize(X)
        self._train(X, 1)
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
        batch = max(256, int(self.batch_size))
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _snapshot(objective, disc, opt, d_opt) -> dict:
    """CPU copies of every weight and optimizer state, to roll back an epoch."""

    def cpu_state(module):
        return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}

    return {
        "objective": cpu_state(objective),
        "disc": None if disc is None else cpu_state(disc),
        "optimizers": copy.deepcopy(_state_to_cpu(opt, d_opt)),
    }


def _restore(snapshot: dict, objective, disc, opt, d_opt) -> None:
    objective.load_state_dict(snapshot["objective"])
    if disc is not None:
        disc.load_state_dict(snapshot["disc"])
    opt.load_state_dict(snapshot["optimizers"]["main"])
    if d_opt is not None:
        d_opt.load_state_dict(snapshot["optimizers"]["prior"])


def _state_to_cpu(opt, d_opt) -> dict:
    def to_cpu(obj):
        if isinstance(obj, torch.Tensor):
            return obj.detach().cpu()
        if isinstance(obj, dict):
            return {k: to_cpu(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [to_cpu(v) for v in obj]
        return obj

    return {
        "main": to_cpu(opt.state_dict()),
        "prior": None if d_opt is None else to_cpu(d_opt.state_dict()),
    }


class _PrintProgress:
    """Minimal stand-in for tqdm when it is not installed."""

    def __init__(self, total: int) -> None:
        self.total, self.n = total, 0

    def update(self, k: int) -> None:
        self.n += k

    def set_postfix(self, **kwargs) -> None:
        text = " ".join(f"{k}={v}" for k, v in kwargs.items())
        print(f"DeepInfoMax epoch {self.n}/{self.total} {text}", file=sys.stderr)

    def close(self) -> None:
        pass
