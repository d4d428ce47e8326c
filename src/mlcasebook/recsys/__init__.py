"""Case 1 — Netflix's recommender in three phases: rules, collaborative filtering, deep context-aware."""
