"""DIMTrainer: Deep InfoMax training in plain PyTorch.

The trainer owns everything training needs and nothing else: the objective
(encoder, critics, predictors), the prior discriminator, both Adam
optimizers, the random generator, the epoch and step counters and the
history. :meth:`DIMTrainer.state_dict` covers all of it, so a run can be
saved, copied and resumed bit for bit. It trains on any iterable of
batches -- a ``DataLoader``, a list of tensors, a generator function's
output -- and reports to callbacks (:mod:`skdim.nn.callbacks`)::

    from torch.utils.data import DataLoader
    from skdim.nn import DIMTrainer, callbacks

    trainer = DIMTrainer.build(in_channels=3, input_shape=(32, 32), seed=0)
    loader = DataLoader(images, batch_size=64, shuffle=True, drop_last=True)
    trainer.fit(loader, epochs=10, callbacks=[callbacks.ProgressBar()])
    torch.save(trainer.state_dict(), "dim.pt")
    codes = trainer.encoder.eval()(images[:8]).y

Randomness: every draw of an epoch (the estimator's batch order, prior
samples, negative subsets, occlusion masks, augmentations) comes from
:attr:`DIMTrainer.generator`, re-seeded at the start of each epoch from the
seed and the epoch index. So a run resumed from a state saved at an epoch
boundary continues exactly as the uninterrupted run, and the global random
generators are never used.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence
from typing import Callable

import torch
from torch import Tensor, nn

from .augment import augment_batch
from .distributed import distributed_training, mean_over_ranks, world
from .objective import DIMConfig, DIMObjective, autocast, build_model
from .priors import discriminator_loss, gradient_penalty, prior_loss, prior_transform, sample_prior
from .runtime import training_settings
from .seeding import seeded_generator

__all__ = ["DIMTrainer", "DivergenceError", "make_optimizers", "ADAM_BETAS",
           "PRIOR_GRADIENT_PENALTY", "STATE_FORMAT"]

ADAM_BETAS = (0.5, 0.999)
# Weight of the discriminator's input-gradient penalty. At 1.0 the
# discriminator stays near chance and gamma=0.1 barely moves the codes; 0.1
# keeps it stable (0.01 was not) while the prior measurably shapes sigmoid(Y)
# (mean KS distance to uniform on digits: 0.21 without the prior term,
# 0.15-0.17 at gamma=0.1, 0.12 at gamma=1).
PRIOR_GRADIENT_PENALTY = 0.1
#: Version of the layout of :meth:`DIMTrainer.state_dict`.
STATE_FORMAT = 1
# Seeds of epoch k and of the in-step draws of process r > 0.
_EPOCH_STRIDE = 7919
_RANK_STRIDE = 104729
_SECTIONS = ("format", "config", "learning_rate", "seed", "epoch", "step", "samples", "history",
             "stream_state", "objective", "discriminator", "optimizer", "d_optimizer")


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or non-finite weights.

    The message names the epoch, the step and the term.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.trainer import DIMTrainer, DivergenceError
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=4, critic_units=8)
    >>> try:
    ...     trainer.fit([torch.full((8, 1, 8, 8), float("nan"))], epochs=1)
    ... except DivergenceError as exc:
    ...     print(str(exc)[:41])
    Training diverged at epoch 1, step 1: the
    """


def make_optimizers(
    objective: nn.Module, discriminator: nn.Module | None, learning_rate: float
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """Adam for the encoder and critics, and a separate Adam for the discriminator.

    Betas ``(0.5, 0.999)`` as in the official release. The fused Adam kernel
    updates all parameters in one pass instead of a dozen elementwise ops
    per tensor: with the 18M parameters of the paper's CIFAR-10 model that
    is measurable on CPU too.

    Examples
    --------
    >>> from torch import nn
    >>> from skdim.nn.trainer import make_optimizers
    >>> main, disc = make_optimizers(nn.Linear(2, 2), None, 1e-4)
    >>> main.defaults["betas"], disc
    ((0.5, 0.999), None)
    """

    def adam(params):
        return torch.optim.Adam(params, lr=learning_rate, betas=ADAM_BETAS, fused=True)

    main = adam(objective.parameters())
    disc = None if discriminator is None else adam(discriminator.parameters())
    return main, disc


def _to_cpu(obj):
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _move_optimizer(optimizer: torch.optim.Optimizer | None, device: torch.device) -> None:
    if optimizer is None:
        return
    for state in optimizer.state.values():
        for key, value in state.items():
            # Fused Adam keeps its step counters on the parameters' device too.
            if isinstance(value, Tensor):
                state[key] = value.to(device)


def _check_finite(terms: dict[str, Tensor], epoch: int, step: int) -> None:
    bad = [k for k, v in terms.items() if not bool(torch.isfinite(v.detach()).all())]
    if bad:
        raise DivergenceError(
            f"Training diverged at epoch {epoch + 1}, step {step + 1}: the "
            f"{', '.join(bad)} term(s) became non-finite (NaN or inf). Try a lower "
            "learning_rate, precision='float32' or check the input scale."
        )


def _first_tensor(batch) -> Tensor:
    """The inputs of a batch: a tensor, or the first entry of ``(x, y, ...)``."""
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    if not isinstance(batch, Tensor):
        raise TypeError(
            f"A batch must be a tensor or a tuple whose first entry is one; got "
            f"{type(batch).__name__}."
        )
    return batch


class DIMTrainer:
    """Deep InfoMax training state and loop.

    Parameters
    ----------
    objective : DIMObjective
        Encoder and critics (:func:`skdim.nn.objective.build_model`).
    discriminator : nn.Module, default=None
        Prior discriminator; needed when ``config.gamma > 0``.
    config : DIMConfig, default=None
        Weights and choices of the objective; ``DIMConfig()`` when None.
    learning_rate : float, default=1e-4
        Adam learning rate of both optimizers.
    seed : int, default=0
        Seeds every epoch's generator (see the module docstring).
    device : str or torch.device, default="cpu"
        Where training runs; the modules are moved there.
    compile : bool, default=False
        Compile the training forward pass with :func:`torch.compile` during
        :meth:`fit` (the modules themselves stay eager).

    Attributes
    ----------
    objective, discriminator : nn.Module
    optimizer, d_optimizer : torch.optim.Optimizer
    generator : torch.Generator
        Source of the current epoch's random draws (CPU).
    epoch : int
        Epochs completed.
    step : int
        Optimisation steps taken.
    samples : int
        Training rows seen (the sum of the batch sizes of all steps).
    history : list of dict
        One dict per epoch: ``"epoch"``, the mean of every term over its
        batches (see :meth:`train_step`) and the ``"precision"`` it ran in;
        ``"stopped": True`` marks an epoch that a callback ended early.
    stop_training : bool
        Set by a callback to end training after the current batch.
    error : BaseException or None
        What ended the last :meth:`fit`, for callbacks' ``on_fit_end``.

    Examples
    --------
    >>> import torch
    >>> from skdim.nn.trainer import DIMTrainer
    >>> images = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> trainer = DIMTrainer.build(1, (8, 8), n_components=8, critic_units=16, seed=0)
    >>> history = trainer.fit([images[:32], images[32:]], epochs=2)
    >>> len(history), sorted(history[-1])
    (2, ['discriminator', 'epoch', 'local_mi', 'loss', 'precision', 'prior'])
    >>> state = trainer.state_dict()  # everything: weights, optimizers, counters
    >>> again = DIMTrainer.build(1, (8, 8), n_components=8, critic_units=16, seed=0)
    >>> again.load_state_dict(state)
    >>> again.epoch, bool(torch.equal(again.encoder(images).y, trainer.encoder(images).y))
    (2, True)
    """

    def __init__(
        self,
        objective: DIMObjective,
        discriminator: nn.Module | None = None,
        config: DIMConfig | None = None,
        *,
        learning_rate: float = 1e-4,
        seed: int = 0,
        device: str | torch.device = "cpu",
        compile: bool = False,
    ) -> None:
        self.config = DIMConfig() if config is None else config
        if self.config.gamma > 0 and discriminator is None:
            raise ValueError("config.gamma > 0 needs a prior discriminator.")
        self.device = torch.device(device)
        self.objective = objective.to(self.device).eval()
        self.discriminator = None if discriminator is None else discriminator.to(self.device).eval()
        self.learning_rate = float(learning_rate)
        self.optimizer, self.d_optimizer = make_optimizers(
            self.objective, self.discriminator, self.learning_rate
        )
        self.seed = int(seed)
        self.compile = bool(compile)
        self.generator = seeded_generator(self.seed)
        self.epoch = 0
        self.step = 0
        self.samples = 0
        self.history: list[dict] = []
        self.stream_state: Tensor | None = None
        self.stop_training = False
        self.error: BaseException | None = None
        # Set by fit() for callbacks: the epoch count it trains up to, and
        # the batches per epoch when the iterable has a length.
        self.target_epoch = 0
        self.batches_per_epoch: int | None = None
        self._epoch_step = 0
        self._forward: Callable | None = None
        self._disc_forward: Callable | None = None

    @classmethod
    def build(
        cls,
        in_channels: int,
        input_shape: Sequence[int],
        *,
        n_components: int = 64,
        encoder="auto",
        local_layer: int | None = None,
        local_critic: str = "dot",
        critic_units: int = 512,
        config: DIMConfig | None = None,
        learning_rate: float = 1e-4,
        seed: int = 0,
        device: str | torch.device = "cpu",
        compile: bool = False,
    ) -> "DIMTrainer":
        """Build the model (:func:`~skdim.nn.objective.build_model`) and its trainer.

        The arguments are those of :func:`~skdim.nn.objective.build_model`
        and of the constructor. Initialisation is seeded by ``seed``.
        """
        config = DIMConfig() if config is None else config
        objective, disc = build_model(
            in_channels, tuple(input_shape), n_components=n_components, encoder=encoder,
            local_layer=local_layer, config=config, local_critic=local_critic,
            critic_units=critic_units, seed=seed,
        )
        return cls(objective, disc, config, learning_rate=learning_rate, seed=seed, device=device,
                   compile=compile)

    # ------------------------------------------------------------------ state
    @property
    def encoder(self) -> nn.Module:
        """The encoder being trained (part of :attr:`objective`)."""
        return self.objective.encoder

    @property
    def epoch_step(self) -> int:
        """Steps taken in the epoch under way (the last one's count between epochs)."""
        return self._epoch_step

    def set_learning_rate(self, learning_rate: float) -> None:
        """Use ``learning_rate`` from the next step on (Adam's moments are kept)."""
        self.learning_rate = float(learning_rate)
        for optimizer in (self.optimizer, self.d_optimizer):
            for group in optimizer.param_groups if optimizer is not None else ():
                group["lr"] = self.learning_rate

    def to(self, device: str | torch.device) -> "DIMTrainer":
        """Move the modules and the optimizers' state to ``device``; returns self."""
        self.device = torch.device(device)
        self.objective.to(self.device)
        if self.discriminator is not None:
            self.discriminator.to(self.device)
        _move_optimizer(self.optimizer, self.device)
        _move_optimizer(self.d_optimizer, self.device)
        return self

    def state_dict(self) -> dict:
        """Everything needed to continue training, as CPU tensors and plain values.

        Loadable with ``torch.load(weights_only=True)``.
        """
        return {
            "format": STATE_FORMAT,
            "config": self.config.to_dict(),
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "epoch": self.epoch,
            "step": self.step,
            "samples": self.samples,
            "history": [dict(h) for h in self.history],
            "stream_state": None if self.stream_state is None else self.stream_state.clone(),
            "objective": _to_cpu(self.objective.state_dict()),
            "discriminator": None if self.discriminator is None
            else _to_cpu(self.discriminator.state_dict()),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "d_optimizer": None if self.d_optimizer is None else _to_cpu(self.d_optimizer.state_dict()),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` of a trainer built the same way.

        Raises
        ------
        ValueError
            If ``state`` lacks a section, or its weights or optimizer states
            do not fit this model (another architecture or configuration).
            The trainer is unchanged then.
        """
        if not isinstance(state, dict):
            raise ValueError(f"A trainer state is a dict; got {type(state).__name__}.")
        missing = [k for k in _SECTIONS if k not in state]
        if missing:
            raise ValueError(f"The trainer state lacks {', '.join(missing)}.")
        if state["format"] != STATE_FORMAT:
            raise ValueError(f"Trainer state format {state['format']!r} is not {STATE_FORMAT}.")
        if (state["discriminator"] is None) != (self.discriminator is None):
            raise ValueError("The trainer state and this trainer differ in having a prior "
                             "discriminator (gamma > 0).")
        backup = copy.deepcopy(self.state_dict())
        try:
            self.config = DIMConfig(**state["config"])
            self.objective.load_state_dict(state["objective"])
            # Copies: Optimizer.load_state_dict would keep the caller's tensors.
            self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
            if self.discriminator is not None:
                self.discriminator.load_state_dict(state["discriminator"])
                self.d_optimizer.load_state_dict(copy.deepcopy(state["d_optimizer"]))
            _move_optimizer(self.optimizer, self.device)
            _move_optimizer(self.d_optimizer, self.device)
            self.learning_rate = float(state["learning_rate"])
            self.seed, self.epoch, self.step = int(state["seed"]), int(state["epoch"]), int(state["step"])
            self.samples = int(state["samples"])
            self.history = [dict(h) for h in state["history"]]
            stream = state["stream_state"]
            self.stream_state = None if stream is None else stream.clone()
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            self._restore_quietly(backup)
            raise ValueError(f"The trainer state does not fit this model: {exc}") from exc

    def _restore_quietly(self, backup: dict) -> None:
        self.objective.load_state_dict(backup["objective"])
        self.optimizer.load_state_dict(backup["optimizer"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(backup["discriminator"])
            self.d_optimizer.load_state_dict(backup["d_optimizer"])
        self.config = DIMConfig(**backup["config"])
        self.learning_rate = backup["learning_rate"]
        self.seed, self.epoch, self.step = backup["seed"], backup["epoch"], backup["step"]
        self.samples = backup["samples"]
        self.history = backup["history"]
        self.stream_state = backup["stream_state"]

    def copy(self) -> "DIMTrainer":
        """An independent copy (modules, optimizers, generator, counters)."""
        other = copy.copy(self)
        other.objective = copy.deepcopy(self.objective)
        other.discriminator = copy.deepcopy(self.discriminator)
        other.optimizer, other.d_optimizer = make_optimizers(
            other.objective, other.discriminator, self.learning_rate
        )
        # Optimizer.load_state_dict keeps the given tensors: copy them, or
        # both trainers would update the same Adam moments.
        other.optimizer.load_state_dict(copy.deepcopy(self.optimizer.state_dict()))
        if other.d_optimizer is not None:
            other.d_optimizer.load_state_dict(copy.deepcopy(self.d_optimizer.state_dict()))
        other.generator = torch.Generator()
        other.generator.set_state(self.generator.get_state())
        other.history = [dict(h) for h in self.history]
        other.stream_state = None if self.stream_state is None else self.stream_state.clone()
        other._forward = other._disc_forward = None
        return other

    # --------------------------------------------------------------- training
    def _epoch_seed(self) -> int:
        return self.seed + _EPOCH_STRIDE * (self.epoch + 1)

    def _begin_epoch(self, stream: bool) -> None:
        self.generator.manual_seed(self._epoch_seed())
        if stream and self.stream_state is not None:
            # partial_fit continues one random stream over its calls, so that
            # chunks train like one epoch over their concatenation.
            self.generator.set_state(self.stream_state)
        rank = world()[0]
        # Every process draws the same batch order from self.generator; the
        # in-step draws (prior samples, negatives) differ between processes.
        self._step_generator = self.generator if rank == 0 else seeded_generator(
            self._epoch_seed() + _RANK_STRIDE * rank
        )

    def train_step(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One update of the encoder and critics, and one of the discriminator.

        ``generator`` supplies the step's random draws (prior samples,
        negative subsets, masks); by default the current epoch's. Called
        alone (outside :meth:`train_epoch`), it puts the modules in training
        mode and leaves them there.

        The prior game takes two separate steps on opposite objectives: the
        discriminator learns to tell prior samples from (detached) codes,
        then the encoder is updated to fool the frozen discriminator. With
        ``config.augment`` the batch is first randomly shift-cropped and
        flipped (:func:`skdim.nn.augment.augment_batch`), on its device;
        with ``config.cross_view`` two views of it are drawn and stacked.

        Returns
        -------
        terms : dict of 0-d tensors
            ``"local_mi"``, ``"global_mi"``, ``"multiple_globals_mi"`` (the
            estimator's bound: nats for infoNCE and DV; for JSD a
            Jensen-Shannon score -- at most 0, ``-2 log 2`` for a critic that
            cannot tell the pairs apart, lower while it is confidently wrong --
            not nats),
            ``"coordinate"``, ``"relative_coordinate"`` (cross-entropies),
            ``"prior"`` (the encoder's prior loss), ``"discriminator"`` (its
            loss) and ``"loss"`` (the encoder's total), those active.
        """
        config = self.config
        generator = generator or getattr(self, "_step_generator", self.generator)
        device = self.device
        for module in (self.objective, self.discriminator):
            if module is not None and not module.training:
                module.train()
        x = x.to(device, non_blocking=True)
        n_inputs = int(x.shape[0])
        kind = config.augmentation
        if config.cross_view:
            x = torch.cat([augment_batch(x, generator, kind), augment_batch(x, generator, kind)])
        elif kind is not None:
            x = augment_batch(x, generator, kind)
        if x.dim() == 4:
            # oneDNN (CPU) and cuDNN run NHWC convolutions faster, and the local
            # critic wants its map channels-last anyway (benchmarks/bench_fit.py).
            x = x.contiguous(memory_format=torch.channels_last)
        forward = self._forward or self.objective
        with autocast(device, config.precision):
            code, terms = forward(x, config, generator)
        loss = torch.zeros((), device=device)
        if "local_mi" in terms:
            loss = loss - config.beta * terms["local_mi"]
        if "global_mi" in terms:
            loss = loss - config.alpha * terms["global_mi"]
        # Block codes are a local objective: they share beta with local DIM.
        if "multiple_globals_mi" in terms:
            loss = loss - config.beta * terms["multiple_globals_mi"]
        if "coordinate" in terms:
            loss = loss + config.coordinate_weight * terms["coordinate"]
        if "relative_coordinate" in terms:
            loss = loss + config.relative_coordinate_weight * terms["relative_coordinate"]

        disc = self.discriminator
        if disc is not None and config.gamma > 0:
            disc_forward = self._disc_forward or disc
            fake = prior_transform(config.prior, code.float())
            real = sample_prior(config.prior, code.shape[0], code.shape[1], generator, device)
            d_loss = discriminator_loss(disc_forward(real), disc_forward(fake.detach()))
            d_total = d_loss + PRIOR_GRADIENT_PENALTY * gradient_penalty(disc_forward, real)
            terms["discriminator"] = d_loss
            _check_finite({"discriminator": d_total}, self.epoch, self._epoch_step)
            self.d_optimizer.zero_grad(set_to_none=True)
            d_total.backward()
            self.d_optimizer.step()

            disc.requires_grad_(False)
            try:
                terms["prior"] = prior_loss(disc(fake))
            finally:
                disc.requires_grad_(True)
            loss = loss + config.gamma * terms["prior"]

        terms["loss"] = loss
        _check_finite(terms, self.epoch, self._epoch_step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.samples += n_inputs
        self._epoch_step += 1
        return {k: v.detach() for k, v in terms.items()}

    def train_epoch(self, batches: Iterable, callbacks: Sequence = (), *, stream: bool = False) -> dict:
        """One pass over ``batches``; returns the epoch's entry of :attr:`history`.

        Parameters
        ----------
        batches : iterable
            Tensors ``(B, C, *spatial)``, or tuples whose first entry is one
            (a labelled ``DataLoader``). Iterated once, after the epoch's
            generator is seeded. A batch of one row is skipped with a warning
            (the contrastive bounds and BatchNorm need two).
        callbacks : sequence of Callback, default=()
            Receive ``on_batch_end`` and ``on_epoch_end``.
        stream : bool, default=False
            Continue the random stream of the previous ``stream`` epoch
            instead of re-seeding (the estimator's ``partial_fit``).
        """
        self._begin_epoch(stream)
        self._epoch_step = 0
        self.objective.train()
        if self.discriminator is not None:
            self.discriminator.train()
        sums: dict[str, Tensor] = {}
        n_batches = 0
        try:
            for batch in batches:
                x = _first_tensor(batch)
                if x.shape[0] < 2:
                    warnings.warn("Skipped a batch of one row: the contrastive bounds and "
                                  "BatchNorm need at least two.", RuntimeWarning, stacklevel=2)
                    continue
                terms = self.train_step(x)
                for k, v in terms.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                n_batches += 1
                logs = {"batch_size": int(x.shape[0]), **terms}
                for callback in callbacks:
                    callback.on_batch_end(self, logs)
                if self.stop_training:
                    break
            if n_batches == 0:
                raise ValueError("The epoch had no batch of at least two rows to train on.")
            self._check_weights()
        finally:
            self.objective.eval()
            if self.discriminator is not None:
                self.discriminator.eval()
        stats = mean_over_ranks({k: float(v) / n_batches for k, v in sums.items()})
        entry = {"epoch": self.epoch + 1, **stats, "precision": self.config.precision}
        if self.stop_training:
            entry["stopped"] = True
        self.history.append(entry)
        self.epoch += 1
        if stream:
            self.stream_state = self.generator.get_state()
        for callback in callbacks:
            callback.on_epoch_end(self, entry)
        return entry

    def _check_weights(self) -> None:
        for module in (self.objective, self.discriminator):
            for p in module.parameters() if module is not None else ():
                if not bool(torch.isfinite(p).all()):
                    raise DivergenceError(
                        f"Training diverged in epoch {self.epoch + 1}: weights became "
                        "non-finite. Try a lower learning_rate or precision='float32'."
                    )

    def fit(self, batches: Iterable, epochs: int, callbacks: Sequence = (), *,
            stream: bool = False) -> list[dict]:
        """Train for ``epochs`` passes over ``batches``; returns :attr:`history`.

        ``batches`` must be re-iterable (a ``DataLoader``, a list), since it
        is iterated once per epoch. Callbacks (:mod:`skdim.nn.callbacks`)
        see ``on_fit_begin``, ``on_epoch_begin``, ``on_batch_end``,
        ``on_epoch_end`` and, also when training raises, ``on_fit_end``.
        Process-wide settings (TF32 for ``precision="tf32"`` on CUDA, the
        thread cap) hold only while this runs; under ``torch.distributed``
        the modules are wrapped for data-parallel training meanwhile
        (:func:`skdim.nn.distributed.distributed_training`).
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0; got {epochs!r}.")
        callbacks = list(callbacks)
        self.stop_training = False
        self.error = None
        self.target_epoch = self.epoch + epochs
        self.batches_per_epoch = len(batches) if hasattr(batches, "__len__") else None
        tf32 = self.config.precision == "tf32" and self.device.type == "cuda"
        try:
            with training_settings(tf32=tf32), distributed_training(self):
                if self.compile:
                    self._forward = torch.compile(self._forward or self.objective)
                for callback in callbacks:
                    callback.on_fit_begin(self)
                for _ in range(epochs):
                    for callback in callbacks:
                        callback.on_epoch_begin(self)
                    if self.stop_training:
                        break
                    self.train_epoch(batches, callbacks, stream=stream)
                    if self.stop_training:
                        break
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self._forward = self._disc_forward = None
            for callback in callbacks:
                callback.on_fit_end(self)
        return self.history
