"""Customer segmentation, the course's third beginner project: RFM features from purchases,
k-means and a Gaussian mixture with the number of segments chosen from the data, profiles and
names a marketer can act on.

Data: CDNOW (Fader & Hardie), every purchase from 1997-01 to 1998-06 by the 23,570 people who
first bought at the online CD shop in the first quarter of 1997, as Lifetimes ships it. We read
the file by path because ``import lifetimes`` fails on recent pandas.

RFM per customer, measured on the day after the last purchase in the data:
  recency   days since the customer's last purchase
  frequency number of distinct purchase days (orders)
  monetary  total spend in dollars
All three are heavily skewed (half the customers bought once), so clustering sees
``log1p`` of each, standardised; profiles report the raw values.

Choosing the number of segments: k-means takes the k with the best silhouette (computed on a
seeded sample, because silhouette is quadratic in rows); the Gaussian mixture takes the k with
the lowest BIC. ``frequency`` is an integer, so a mixture component could collapse onto the
customers who bought exactly once and make the likelihood (and so BIC) unbounded; a variance
floor (``reg_covar``) on the standardised features prevents that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.sources import packaged_file

RFM = ("recency", "frequency", "monetary")
METHODS = ("kmeans", "gmm")
# two segments is the "still buying vs gone" split every shop already knows (and the one
# silhouette favours on CDNOW); the search starts at three so the segments can be acted on
DEFAULT_K_RANGE = range(3, 9)
SILHOUETTE_SAMPLE = 4000
GMM_REG_COVAR = 1e-2   # variance floor on standardised features (see module docstring)

# rows: recent / cooling / lapsed; columns: few / some / many orders
SEGMENT_GRID = (("promising", "loyal", "champions"),
                ("about to sleep", "needs attention", "at risk"),
                ("lost", "hibernating", "can't lose them"))
# What each name means and what a marketer would do with it.
SEGMENT_ACTIONS = {
    "champions": "bought recently and often, spend the most: reward them, ask for reviews, early access",
    "loyal": "buy regularly and recently: upsell, loyalty programme",
    "promising": "recent buyers with few orders (new or returning): onboarding, a second-purchase offer",
    "at risk": "bought often, but not in the last months: win-back campaign before they are lost",
    "needs attention": "a few orders, not seen for months: reminder, personalised picks",
    "about to sleep": "one order some months ago: a light, cheap nudge",
    "can't lose them": "were frequent buyers, gone for a long time: personal outreach, best offer",
    "hibernating": "a few orders long ago: include in seasonal campaigns only",
    "lost": "bought once, long ago: cheap reactivation at most, or let go",
}


def load_cdnow_purchases(path: Path | str | None = None) -> pd.DataFrame:
    """CDNOW purchases: ``customer_id`` (str), ``date`` (datetime), ``cds`` (int), ``dollars``
    (float). Default: the full file Lifetimes ships (69,659 purchases)."""
    if path is None:
        try:
            path = packaged_file("lifetimes", "datasets", "CDNOW_master.txt")
        except DataError as exc:
            raise DataError("the CDNOW purchases ship with the package Lifetimes, which is not installed",
                            hint="pip install Lifetimes (only its data file is used)") from exc
    path = Path(path)
    try:
        raw = pd.read_csv(path, sep=r"\s+", header=0, names=["customer_id", "date", "cds", "dollars"],
                          dtype={"customer_id": str, "date": str})
        raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"could not read purchases from {path} ({exc})",
                        hint="expected whitespace-separated columns: customer id, date YYYYMMDD, "
                             "number of CDs, dollar value") from exc
    if raw.empty:
        raise DataError(f"{path} has no purchases", hint="check the file")
    return raw


def rfm_features(purchases: pd.DataFrame, snapshot: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per customer (index ``customer_id``) with recency (days), frequency (orders =
    distinct purchase days) and monetary (total dollars). ``snapshot`` defaults to the day after
    the last purchase, so the most recent buyers have recency 1."""
    missing = {"customer_id", "date", "dollars"} - set(purchases.columns)
    if missing:
        raise DataError(f"purchases lack the columns {sorted(missing)}",
                        hint="needs customer_id, date and dollars")
    snapshot = snapshot if snapshot is not None else purchases["date"].max() + pd.Timedelta(days=1)
    grouped = purchases.groupby("customer_id")
    rfm = pd.DataFrame({
        "recency": (snapshot - grouped["date"].max()).dt.days,
        "frequency": grouped["date"].nunique(),
        "monetary": grouped["dollars"].sum(),
    })
    return rfm


def scale_rfm(rfm: pd.DataFrame) -> np.ndarray:
    """log1p then standardise: the skew would otherwise let a few big spenders decide every
    cluster. Negative totals (refunds) are clipped at zero before the log."""
    from sklearn.preprocessing import StandardScaler

    logged = np.log1p(rfm[list(RFM)].clip(lower=0).to_numpy(dtype=float))
    return StandardScaler().fit_transform(logged)


@dataclass
class Segmentation:
    """A fitted segmentation: labels aligned with the RFM rows, how k was chosen, profiles."""

    method: str
    k: int
    labels: np.ndarray
    selection: pd.DataFrame     # one row per candidate k: its score ("silhouette" or "bic")
    profiles: pd.DataFrame      # one row per segment, named, sorted by share of revenue

    @property
    def names(self) -> dict[int, str]:
        return dict(zip(self.profiles["segment_id"], self.profiles["segment"], strict=True))

    def named_labels(self, index: pd.Index | None = None) -> pd.Series:
        return pd.Series([self.names[label] for label in self.labels], index=index, name="segment")


def segment_customers(rfm: pd.DataFrame, method: str = "kmeans", k_range=DEFAULT_K_RANGE, seed: int = 0,
                      sample_size: int = SILHOUETTE_SAMPLE, features: np.ndarray | None = None) -> Segmentation:
    """Cluster customers with ``method`` ("kmeans" or "gmm"), choosing k in ``k_range``.
    ``features`` overrides the scaled RFM matrix (tests plant clusters directly)."""
    if method not in METHODS:
        raise DataError(f"unknown segmentation method '{method}'", hint=f"choose one of: {', '.join(METHODS)}")
    X = scale_rfm(rfm) if features is None else np.asarray(features, dtype=float)
    candidates = [k for k in k_range if 2 <= k < len(X)]
    if not candidates:
        raise DataError(f"cannot segment {len(X)} customers into {list(k_range)} groups",
                        hint="need more customers than segments, and at least 2 segments")
    if method == "kmeans":
        k, labels, selection = _kmeans_by_silhouette(X, candidates, seed, sample_size)
    else:
        k, labels, selection = _gmm_by_bic(X, candidates, seed)
    return Segmentation(method, k, labels, selection, segment_profiles(rfm, labels))


def _kmeans_by_silhouette(X: np.ndarray, candidates: list[int], seed: int, sample_size: int):
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    sample = rng.choice(len(X), size=min(sample_size, len(X)), replace=False)
    rows, fitted = [], {}
    for k in candidates:
        model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(X)
        sample_labels = model.labels_[sample]
        score = silhouette_score(X[sample], sample_labels) if len(np.unique(sample_labels)) > 1 else -1.0
        rows.append({"k": k, "silhouette": float(score), "inertia": float(model.inertia_)})
        fitted[k] = model.labels_
    selection = pd.DataFrame(rows)
    best = int(selection.loc[selection["silhouette"].idxmax(), "k"])
    return best, fitted[best], selection


def _gmm_by_bic(X: np.ndarray, candidates: list[int], seed: int):
    from sklearn.mixture import GaussianMixture

    rows, fitted = [], {}
    for k in candidates:
        model = GaussianMixture(n_components=k, covariance_type="full", reg_covar=GMM_REG_COVAR, n_init=2,
                                random_state=seed).fit(X)
        rows.append({"k": k, "bic": float(model.bic(X))})
        fitted[k] = model.predict(X)
    selection = pd.DataFrame(rows)
    best = int(selection.loc[selection["bic"].idxmin(), "k"])
    return best, fitted[best], selection


def segment_profiles(rfm: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """Per segment: size, share of customers, mean recency/frequency/monetary, share of revenue,
    a name and what to do with it. Sorted by share of revenue, largest first."""
    frame = rfm[list(RFM)].assign(segment_id=np.asarray(labels))
    profile = frame.groupby("segment_id").agg(
        customers=("recency", "size"), recency_days=("recency", "mean"), median_recency_days=("recency", "median"),
        orders=("frequency", "mean"), median_orders=("frequency", "median"), spend=("monetary", "mean"),
        revenue=("monetary", "sum")).reset_index()
    profile["share_of_customers"] = profile["customers"] / profile["customers"].sum()
    total_revenue = profile["revenue"].sum()
    profile["share_of_revenue"] = profile["revenue"] / total_revenue if total_revenue > 0 else np.nan
    profile.insert(0, "segment", name_segments(profile, rfm))
    profile["action"] = [SEGMENT_ACTIONS[_base_name(n)] for n in profile["segment"]]
    return profile.sort_values("share_of_revenue", ascending=False).reset_index(drop=True)


def name_segments(profile: pd.DataFrame, rfm: pd.DataFrame) -> list[str]:
    """Readable names from a 3 x 3 grid (the classic RFM vocabulary), read from each segment's
    median customer (means are dragged by a few heavy buyers). Recency is read against the
    observation window (the oldest last purchase): recent in its last third, lapsed in its first
    third, cooling between. Orders are read as the percentile of the median order count among
    all customers (ties count half): few below 0.5, many above 0.8, some between.
    Two segments that land on the same name are told apart by spend."""
    window = max(float(rfm["recency"].max()), 1.0)
    # tiers: recency 0 recent .. 2 lapsed; orders 0 few .. 2 many
    recency_tier = np.digitize(profile["median_recency_days"].to_numpy() / window, [1 / 3, 2 / 3])
    frequency = rfm["frequency"].to_numpy()
    median_orders = profile["median_orders"].to_numpy()
    orders_pct = np.array([(frequency < f).mean() + 0.5 * (frequency == f).mean() for f in median_orders])
    orders_tier = np.digitize(orders_pct, [0.5, 0.8])
    orders_tier[median_orders <= 1] = 0  # one order is "few" even where nearly everyone bought once
    names = [SEGMENT_GRID[r][f] for r, f in zip(recency_tier, orders_tier, strict=True)]
    return _disambiguate(names, profile["spend"].to_numpy())


def _disambiguate(names: list[str], spend: np.ndarray) -> list[str]:
    out = list(names)
    for name in set(names):
        members = [i for i, n in enumerate(names) if n == name]
        if len(members) < 2:
            continue
        by_spend = sorted(members, key=lambda i: -spend[i])
        for rank, i in enumerate(by_spend):
            last = rank == len(by_spend) - 1
            tag = "higher spend" if rank == 0 else "lower spend" if last else f"spend tier {rank + 1}"
            out[i] = f"{name} ({tag})"
    return out


def _base_name(name: str) -> str:
    return name.split(" (")[0]


# ---- figures a marketer can read -----------------------------------------------------------------

def segment_figure(rfm: pd.DataFrame, result: Segmentation, seed: int = 0, max_points: int = 5000):
    """Left: every customer's recency against orders, coloured by segment (a seeded sample; the
    orders axis is logarithmic and jittered so one-time buyers do not pile onto one line).
    Right: each segment's share of customers beside its share of revenue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result.named_labels(rfm.index)
    order = list(result.profiles["segment"])
    colours = dict(zip(order, plt.get_cmap("tab10").colors, strict=False))
    rng = np.random.default_rng(seed)
    shown = rng.choice(len(rfm), size=min(max_points, len(rfm)), replace=False)
    fig, (scatter, bars) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.25, 1]})
    jitter = np.exp(rng.uniform(-0.12, 0.12, size=len(shown)))
    shown_names = names.to_numpy()[shown]
    for name in order:
        mask = shown_names == name
        member = shown[mask]
        scatter.scatter(rfm["recency"].to_numpy()[member], rfm["frequency"].to_numpy()[member] * jitter[mask],
                        s=6, alpha=0.5, color=colours[name], label=name)
    scatter.set_yscale("log")
    scatter.set_xlabel("days since last purchase (recency)")
    scatter.set_ylabel("number of orders (frequency, log scale)")
    scatter.set_title(f"{len(rfm):,} customers in {result.k} segments ({result.method})")
    scatter.legend(markerscale=3, fontsize=8, loc="upper right")
    positions = np.arange(len(order))
    profile = result.profiles
    bars.barh(positions + 0.2, profile["share_of_customers"] * 100, height=0.4, color="#bbbbbb",
              label="share of customers")
    bars.barh(positions - 0.2, profile["share_of_revenue"] * 100, height=0.4,
              color=[colours[n] for n in order], label="share of revenue")
    for y, share in zip(positions - 0.2, profile["share_of_revenue"] * 100, strict=True):
        bars.text(share + 0.5, y, f"{share:.0f} %", va="center", fontsize=8)
    bars.set_yticks(positions, order)
    bars.invert_yaxis()
    bars.set_xlabel("%")
    bars.set_title("Who brings the revenue")
    bars.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def selection_figure(results: list[Segmentation]):
    """How k was chosen: silhouette (higher is better) and BIC (lower is better) against k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.2), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        column = "silhouette" if result.method == "kmeans" else "bic"
        ax.plot(result.selection["k"], result.selection[column], marker="o")
        ax.axvline(result.k, ls="--", color="#c00")
        ax.set_xlabel("number of segments k")
        ax.set_ylabel(column + (" (higher is better)" if column == "silhouette" else " (lower is better)"))
        ax.set_title(f"{result.method}: chose k = {result.k}")
    fig.tight_layout()
    return fig
