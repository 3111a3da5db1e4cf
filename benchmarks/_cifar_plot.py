"""The learning-curve figure of ``bench_cifar10.py``: probe accuracy against training minutes.

One line per probe and layer (linear SVM on conv, fc and Y dash-dotted with
circles; the MLP-200 probe on the layers it ran on, solid with squares), one
point per snapshot, and the paper's numbers as horizontal reference lines:
table 1 (DIM(L) infoNCE, MLP-200 probe) dashed, table 4 (DIM(L), linear
SVM) dotted, each in its layer's colour. Only the benchmark's JSON is read,
so a figure can be redrawn without training (``bench_cifar10.py --replot
RESULT.json``).
"""

from __future__ import annotations

from pathlib import Path

# The paper's DIM(L) rows (Hjelm et al. 2019, CIFAR-10, %): never measured here.
PAPER_T1_INFONCE = {"conv": 75.21, "fc": 75.57, "y": 69.13}  # MLP-200 probe, 1000 epochs
PAPER_T4 = {"conv": 63.25, "fc": 54.06, "y": 49.62}  # linear SVM
COLORS = {"conv": "tab:blue", "fc": "tab:green", "y": "tab:red"}
NAMES = {"conv": "conv", "fc": "fc", "y": "Y"}


def plot_curve(result: dict, path, *, title: str | None = None) -> Path | None:
    """Draw ``result["snapshots"]`` (the benchmark's JSON) into the PNG ``path``.

    Returns the path written, or None when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    snapshots = result["snapshots"]
    minutes = [s["minutes"] for s in snapshots]
    fig, ax = plt.subplots(figsize=(10, 5))
    for layer in ("conv", "fc", "y"):
        color = COLORS[layer]
        for probe, style, marker in (("linear", "-.", "o"), ("mlp", "-", "s")):
            points = [(m, 100 * s[probe][layer]) for m, s in zip(minutes, snapshots)
                      if layer in s.get(probe, {})]
            if points:
                xs, ys = zip(*points)
                label = f"{'linear SVM' if probe == 'linear' else 'MLP-200'}, {NAMES[layer]}"
                ax.plot(xs, ys, style, marker=marker, color=color, label=label, linewidth=1.6)
                ax.annotate(f"{ys[-1]:.1f}", (xs[-1], ys[-1]), textcoords="offset points",
                            xytext=(4, 2), fontsize=7, color=color)
        ax.axhline(PAPER_T1_INFONCE[layer], color=color, linestyle=(0, (6, 3)), linewidth=0.9,
                   alpha=0.7, label=f"paper t1 {NAMES[layer]} {PAPER_T1_INFONCE[layer]:.2f} "
                                    "(MLP-200, 1000 ep)")
        ax.axhline(PAPER_T4[layer], color=color, linestyle=":", linewidth=0.9, alpha=0.6,
                   label=f"paper t4 {NAMES[layer]} {PAPER_T4[layer]:.2f} (linear)")
    ax.set_xlabel("minutes of DIM training (probes not counted)")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    # Ticks at the snapshot times asked for (15, 30, 60), else at those reached.
    ticks = sorted({s.get("target_minutes") or s["minutes"] for s in snapshots})
    ax.set_xlim(0, max(minutes + ticks) * 1.08)
    ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
    ax.grid(alpha=0.3)
    ax.set_title(title or result.get("title", "DIM(L) on CIFAR-10"), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
