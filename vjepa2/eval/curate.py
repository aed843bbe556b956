"""Data curation by cluster-based retrieval, as the V-JEPA 2 paper curates YT-Temporal-1B (no official code).

1. Embed a pool of uncurated videos and a target set with a frozen encoder (mean-pooled tokens, L2-normalised).
2. Cluster the pool with k-means (faiss when installed, else scikit-learn) and assign each target video to its
   nearest pool centroid: the target's cluster distribution.
3. Retrieve ``size`` pool videos so that their cluster distribution matches the target's (largest-remainder
   quotas, capped by what each cluster holds, the shortfall moved to other target clusters); inside a cluster the
   pool videos most similar (cosine) to a target video of that cluster come first.

``vjepa2 curate`` writes the retrieved list (the official data-list format, one path per line), a JSON summary and
a PNG bar chart of the pool, target and retrieved distributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vjepa2.errors import UserError


@dataclass
class Curation:
    """A retrieval: pool indices in ranked order and the cluster assignments behind them."""

    selected: np.ndarray  # [M] pool indices
    pool_clusters: np.ndarray  # [N_pool] cluster of each pool video
    target_clusters: np.ndarray  # [N_target] nearest pool centroid of each target video
    quotas: np.ndarray  # [K] videos retrieved per cluster
    k: int

    def histograms(self) -> dict[str, np.ndarray]:
        """Share of each cluster ``[K]`` in the pool, the target and the retrieved set."""
        sets = {"pool": self.pool_clusters, "target": self.target_clusters}
        sets["retrieved"] = self.pool_clusters[self.selected]
        return {name: np.bincount(c, minlength=self.k) / max(len(c), 1) for name, c in sets.items()}


def kmeans(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means of ``x [N, D]``: centroids ``[K, D]`` and labels ``[N]`` (faiss if installed, else scikit-learn)."""
    if not 1 <= k <= len(x):
        raise UserError(f"k-means needs 1 <= clusters <= {len(x)} (the pool size), got {k}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        km = faiss.Kmeans(x.shape[1], k, niter=50, seed=seed, verbose=False)
        km.train(x)
        return km.centroids, km.index.search(x, 1)[1][:, 0]
    try:
        from sklearn.cluster import KMeans
    except ImportError as e:
        raise ImportError("curation needs scikit-learn (or faiss): pip install 'vjepa2[eval]'") from e
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    return km.cluster_centers_.astype(np.float32), km.labels_


def cluster_quotas(target_counts: np.ndarray, available: np.ndarray, size: int) -> np.ndarray:
    """Videos to take per cluster ``[K]``: ``size`` split as ``target_counts`` (largest remainder), capped by
    ``available``; a capped cluster's shortfall goes to the other target clusters, in proportion."""
    quotas = np.zeros(len(available), dtype=np.int64)
    open_ = (target_counts > 0) & (available > 0)
    while (left := size - quotas.sum()) > 0 and open_.any():
        share = np.where(open_, target_counts, 0) / np.where(open_, target_counts, 0).sum() * left
        add = np.floor(share).astype(np.int64)
        order = np.argsort(-(share - add))
        add[order[: left - add.sum()]] += 1  # largest remainders
        quotas = np.minimum(quotas + add * open_, available)
        open_ &= quotas < available
    return quotas


def retrieve(pool: torch.Tensor, target: torch.Tensor, k: int, size: int, seed: int = 0) -> Curation:
    """Retrieve ``size`` pool videos matching the target's cluster distribution (pooled features ``[N, D]``)."""
    p, t = F.normalize(pool.float(), dim=-1), F.normalize(target.float(), dim=-1)
    centroids, pool_clusters = kmeans(p.numpy(), k, seed)
    target_clusters = (t @ torch.from_numpy(centroids).T).argmax(-1).numpy()
    available = np.bincount(pool_clusters, minlength=k)
    quotas = cluster_quotas(np.bincount(target_clusters, minlength=k), available, size)
    best_sim = p @ t.T  # [N_pool, N_target]
    selected = []
    for c in np.flatnonzero(quotas):
        members = np.flatnonzero(pool_clusters == c)
        score = best_sim[members][:, torch.from_numpy(target_clusters == c)].max(-1).values
        selected.append(members[torch.argsort(score, descending=True)[: quotas[c]].numpy()])
    selected = np.concatenate(selected) if selected else np.zeros(0, dtype=np.int64)
    return Curation(selected, pool_clusters, target_clusters, quotas, k)


def plot_report(curation: Curation, path: str | Path, title: str = "cluster distributions") -> Path:
    """A PNG bar chart of the pool, target and retrieved cluster shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = curation.histograms()
    x, width = np.arange(curation.k), 0.27
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * curation.k + 2), 3.5))
    for i, (name, share) in enumerate(hist.items()):
        ax.bar(x + (i - 1) * width, share, width, label=f"{name} ({_count(curation, name)})")
    ax.set(xlabel="cluster", ylabel="share of videos", title=title, xticks=x)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _count(curation: Curation, name: str) -> int:
    sizes = {"pool": curation.pool_clusters, "target": curation.target_clusters, "retrieved": curation.selected}
    return len(sizes[name])
