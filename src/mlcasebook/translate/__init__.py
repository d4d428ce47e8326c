"""Case 2 — machine translation: phrase-based SMT → GNMT-style attention → Transformer (→ multilingual)."""
