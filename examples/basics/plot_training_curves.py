"""
=======================================
Training curves: every term of the loss
=======================================

:class:`~skdim.DeepInfoMax` records, for every epoch, the mean of each term of
its objective (paper eq. 8) in :attr:`~skdim.DeepInfoMax.history_`:

``"local_mi"`` and ``"global_mi"``
    The values of the MI bound the encoder maximises (greater is better),
    weighted by ``beta`` and ``alpha``. With the default
    ``mi_estimator="jsd"`` this is a Jensen-Shannon score, not an amount of
    information in nats: 0 for a perfect critic, ``-2 log 2 = -1.386`` for
    a critic that cannot tell real pairs from fake ones, and lower still
    while the critic is confidently wrong (early in training). Only
    ``"infonce"`` and ``"dv"`` report nats.
``"prior"``
    The encoder's prior-matching loss (weight ``gamma``): low when the
    codes fool the prior discriminator.
``"discriminator"``
    The prior discriminator's own loss. Near ``2 log 2 = 1.386`` it cannot
    tell codes from prior samples.
``"loss"``
    The total the encoder minimised:
    ``-alpha * global_mi - beta * local_mi + gamma * prior``.

We train DIM(L+G) -- both MI terms plus the prior -- on the digits and plot
every term. ``warm_start=True`` would continue from the last epoch on the
next ``fit``, and ``partial_fit`` trains one epoch per call; ``history_``
keeps growing either way.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skdim import DeepInfoMax

X = load_digits().images[:800]  # (800, 8, 8) grayscale images

dim = DeepInfoMax(
    n_components=32,
    alpha=0.5,
    beta=1.0,
    gamma=0.1,
    max_epochs=12,
    critic_units=128,
    random_state=0,
).fit(X)

print(f"trained {dim.n_iter_} epochs on {dim.device_}")
print("last epoch:", {k: round(v, 3) if isinstance(v, float) else v
                     for k, v in dim.history_[-1].items()})

# %%
# ``history_`` is a list of dicts, one per epoch, which converts directly to
# arrays (or to a pandas DataFrame with ``pd.DataFrame(dim.history_)``).
epochs = np.array([h["epoch"] for h in dim.history_])
terms = ["local_mi", "global_mi", "prior", "discriminator", "loss"]

fig, axes = plt.subplots(1, len(terms), figsize=(13, 2.8), sharex=True)
for ax, term in zip(axes, terms):
    ax.plot(epochs, [h[term] for h in dim.history_], marker="o", ms=3)
    ax.set_title(term)
    ax.set_xlabel("epoch")
axes[3].axhline(
    2 * np.log(2), color="0.6", ls="--", lw=1, label="chance, 2 log 2"
)
axes[3].legend(fontsize=8)
axes[0].set_ylabel("epoch mean")
fig.tight_layout()
plt.show()

# %%
# Both MI terms rise as the encoder learns to make codes and features
# of the same image recognisable. The JSD scores are bounded above by
# 0 (reached by a perfect critic), so the curves flatten as they approach
# it. The prior and discriminator losses play a two-player game and move
# against each other rather than steadily down.
