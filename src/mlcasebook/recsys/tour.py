"""The recommender's quick mode for `mlcasebook tour`: the phase ladder on embedded data.

MovieLens latest-small, per-user time split (last 20 % of each user's ratings held out), full
ranking of unseen items, relevant = held-out rating >= 4. "Accuracy" in the chapter's sense is
read as HR@10: the share of users for whom at least one of the ten recommendations is a film
they went on to rate 4 or more.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.cases import CaseOutcome, CaseSpec
from ..core.report import Report
from . import evaluate
from .data import RatingData, load_movielens_small
from .models.registry import model_class

LADDER = ["popularity", "rules", "item-knn", "als", "ease", "sequential"]
PHASE_NAMES = {0: "0 · popularity (floor)", 1: "1 · rules", 2: "2 · collaborative filtering",
               3: "3 · deep context-aware"}
PHASE_CLAIMS = {1: "rules_accuracy", 2: "cf_accuracy", 3: "deep_accuracy"}
SMOKE_USERS = 60
# The tour has a time budget: the deep model trains for a few epochs only (the benchmarks train it
# to convergence), which the report says.
QUICK_PARAMS = {"sequential": {"max_epochs": 4}}
SMOKE_PARAMS = {"sequential": {"max_epochs": 2}}


def run_quick(out_dir: Path, smoke: bool = False) -> CaseOutcome:
    data = load_movielens_small()
    if smoke:
        data = _first_users(data, SMOKE_USERS)
    train, test = evaluate.time_split(data, 0.2)
    params = SMOKE_PARAMS if smoke else QUICK_PARAMS
    factories = {name: partial(model_class(name), **params.get(name, {})) for name in LADDER}
    fitted: dict = {}
    table = evaluate.ranking_experiment(train, test, factories, k=10, fitted=fitted)
    ladder = phase_ladder(table)

    report = Report("Case 1 — Netflix's recommender: rules → collaborative filtering → deep", case="recsys")
    summary = data.summary()
    report.text(f"Data: {summary['dataset']} — {summary['ratings']:,} ratings by {summary['users']:,} users of "
                f"{summary['items']:,} films; director/cast metadata matched for "
                f"{summary.get('credits_match_items', float('nan')):.1%} of films. MovieLens records no "
                "device, so 'context' here is hour of day, weekday and recency.")
    report.text("Protocol: last 20 % of each user's ratings held out in time; every unseen film is ranked; "
                "relevant = held-out rating ≥ 4. Quick mode: one split, default hyper-parameters except "
                f"{params} to fit the tour's time budget; full runs: docs/RESULTS.md.", note=True)
    report.heading("The phase ladder")
    report.table(ladder.drop(columns="phase").rename(columns={"hr": "HR@10 (our 'accuracy')"}),
                 "Best model of each phase; 'accuracy' = HR@10 (see note)")
    report.claims_table({
        **{PHASE_CLAIMS[row.phase]: (f"{row.hr:.1%}", f"HR@10 of {row.model}")
           for row in ladder.itertuples(index=False) if row.phase in PHASE_CLAIMS},
        "views_from_recommendations": (
            f"{table['recall@10'].max():.1%}",
            "offline proxy: share of a user's later liked films that were in their top-10 (recall@10); "
            "the chapter's figure is a causal share of real viewing, which offline data cannot measure"),
        "watch_time_uplift": (None, "not measurable offline: needs an A/B test on real viewing"),
    })
    report.heading("All models")
    report.table(table, "Ranking metrics at k = 10, with fit and ranking time in seconds")
    report.figure(_ladder_figure(table), "HR@10 by model, coloured by phase; dashed lines: the chapter's claims")
    report.heading("What the models recommend")
    report.html(_examples_html(data, train, test, fitted))
    page = "recsys.html"
    report.write(out_dir / page)
    best = table.loc[table["ndcg@10"].idxmax()]
    return CaseOutcome(
        page=page,
        headline={"best": str(best["model"]), "NDCG@10": f"{best['ndcg@10']:.3f}", "HR@10": f"{best['hr@10']:.1%}"},
        numbers={"dataset": summary, "protocol": "time split 20 %, full ranking, relevant >= 4",
                 "ranking": table.to_dict(orient="records"), "ladder": ladder.to_dict(orient="records")},
    )


def phase_ladder(table: pd.DataFrame) -> pd.DataFrame:
    """Best model (by NDCG@10) of each phase, with the chapter's figure beside it."""
    from ..core.claims import claims_for

    claims = claims_for("recsys")
    rows = []
    for phase, group in table.groupby("phase"):
        best = group.loc[group["ndcg@10"].idxmax()]
        claim = claims.get(PHASE_CLAIMS.get(int(phase), ""))
        rows.append({"phase": int(phase), "stage": PHASE_NAMES.get(int(phase), str(phase)), "model": best["model"],
                     "hr": best["hr@10"], "ndcg@10": best["ndcg@10"],
                     "chapter 'accuracy'": f"{claim.value:g} %" if claim else "—"})
    return pd.DataFrame(rows)


def _ladder_figure(table: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..core.claims import claims_for

    colours = {0: "#999999", 1: "#e8a33d", 2: "#3d7ee8", 3: "#c0392b"}
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.bar(table["model"], table["hr@10"], color=[colours.get(int(p), "#555") for p in table["phase"]])
    for phase, claim_id in PHASE_CLAIMS.items():
        ax.axhline(claims_for("recsys")[claim_id].value / 100, ls="--", lw=1, color=colours[phase])
    ax.set_ylabel("HR@10")
    ax.set_ylim(0, 1)
    ax.set_title("Phase ladder on a per-user time split")
    fig.autofmt_xdate(rotation=20)
    return fig


def _examples_html(data: RatingData, train: RatingData, test: RatingData, fitted: dict) -> str:
    import html

    liked_later = test.ratings[test.ratings["rating"] >= 4]
    candidates = liked_later["user_id"].value_counts()
    if candidates.empty:
        return "<p>No user has liked films in the test period.</p>"
    user = int(candidates.index[len(candidates) // 2])  # a typical user, not the most active
    later = set(liked_later.loc[liked_later["user_id"] == user, "item_id"])
    titles = data.items["title"]
    history = train.ratings[train.ratings["user_id"] == user].sort_values("timestamp").tail(5)
    parts = [f"<p>User {user}'s last rated films before the split: " + ", ".join(
        f"{html.escape(str(titles.get(i, i)))} ({r:g}★)" for i, r in zip(history["item_id"], history["rating"],
                                                                    strict=True)) + ".</p>"]
    for name in ("rules", _best_name(fitted)):
        if name not in fitted:
            continue
        recs = fitted[name].recommend(user, 5)
        rows = "".join(f"<tr><td>{html.escape(str(titles.get(r.item_id, r.item_id)))}</td>"
                       f"<td style='text-align:left'>{html.escape(r.reason)}</td>"
                       f"<td>{'✔ liked it later' if r.item_id in later else ''}</td></tr>" for r in recs)
        parts.append(f"<table><caption>{html.escape(name)}: top 5 with reasons</caption><thead><tr><th>film</th>"
                     f"<th>reason</th><th>outcome</th></tr></thead><tbody>{rows}</tbody></table>")
    return "".join(parts)


def _best_name(fitted: dict) -> str:
    return "sequential" if "sequential" in fitted else next(iter(fitted), "")


def _first_users(data: RatingData, n_users: int) -> RatingData:
    """The first users' ratings, and only the films they rated (keeps item-item models small)."""
    users = np.sort(data.ratings["user_id"].unique())[:n_users]
    ratings = data.ratings[data.ratings["user_id"].isin(users)]
    smaller = data.with_ratings(ratings)
    smaller.items = data.items.loc[data.items.index.intersection(ratings["item_id"].unique())]
    return smaller


SPEC = CaseSpec(name="recsys", title="1. Recommender (Netflix)", quick_budget_s=240, run_quick=run_quick)
