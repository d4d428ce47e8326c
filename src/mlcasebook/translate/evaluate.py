"""Scoring translations: sacreBLEU corpus BLEU and chrF, decoding speed, and the SMT → GNMT →
Transformer ladder beside the chapter's "+60 % BLEU".

BLEU is computed by sacreBLEU on *detokenized* text with its own tokenizer — ``ja-mecab`` for a
Japanese target (MeCab + IPAdic, shipped by ``sacrebleu[ja]``), ``13a`` otherwise — and its
signature travels with every figure so a score can be reproduced or compared with a paper's.
Tanaka English is lowercase in the corpus itself, so ja→en scores compare lowercase with
lowercase (the signature still says ``case:mixed``: sacreBLEU did not fold case, the data had none).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from ..core.claims import claims_for
from ..core.errors import DataError

LADDER = ("smt", "gnmt", "transformer")
ARCH_NAMES = {"smt": "phrase-based SMT", "gnmt": "GNMT-style LSTM + attention", "transformer": "Transformer",
              "multilingual": "multilingual Transformer"}


def bleu_tokenizer(tgt_lang: str) -> str:
    return "ja-mecab" if tgt_lang == "ja" else "13a"


@dataclass
class Scores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    bleu_detail: str          # sacreBLEU's one-line summary: n-gram precisions, brevity penalty, lengths
    sentences: int

    def to_dict(self) -> dict:
        return asdict(self)


def score(hypotheses: Sequence[str], references: Sequence[str], tgt_lang: str) -> Scores:
    """Corpus BLEU and chrF of detokenized ``hypotheses`` against one reference each."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise DataError(f"{len(hypotheses)} translations but {len(references)} references",
                        hint="the source and reference files must have the same number of lines")
    if not references:
        raise DataError("nothing to score: no sentences", hint="pass non-empty files")
    bleu_metric, chrf_metric = BLEU(tokenize=bleu_tokenizer(tgt_lang)), CHRF()
    hyps, refs = list(hypotheses), [list(references)]
    bleu = bleu_metric.corpus_score(hyps, refs)
    chrf = chrf_metric.corpus_score(hyps, refs)
    return Scores(bleu=float(bleu.score), chrf=float(chrf.score), bleu_signature=str(bleu_metric.get_signature()),
                  chrf_signature=str(chrf_metric.get_signature()), bleu_detail=str(bleu), sentences=len(refs[0]))


def timed(translate: Callable[[list[str]], list[str]], sources: Sequence[str]) -> tuple[list[str], float, float]:
    """(translations, seconds, sentences per second) of one call of ``translate`` on ``sources``."""
    started = time.perf_counter()
    outputs = translate(list(sources))
    seconds = time.perf_counter() - started
    return outputs, seconds, len(sources) / seconds if seconds > 0 else float("inf")


def paired_bootstrap(baseline: Sequence[str], system: Sequence[str], references: Sequence[str], tgt_lang: str,
                     samples: int = 1000) -> dict:
    """Is ``system`` better than ``baseline`` on these sentences beyond resampling noise? Paired
    bootstrap resampling of corpus BLEU (Koehn 2004; sacreBLEU's implementation and its fixed seed):
    both systems are scored on the same ``samples`` resampled test sets. Returns each system's BLEU
    with its 95 % half-interval over the resamples, the difference, and the p-value of the
    difference (small: unlikely to be resampling noise)."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    if not (len(baseline) == len(system) == len(references)) or not references:
        raise DataError(f"paired test needs equal, non-empty line counts: {len(baseline)} baseline, "
                        f"{len(system)} system, {len(references)} references",
                        hint="score both systems on the same sentences")
    test = PairedTest([("baseline", list(baseline)), ("system", list(system))],
                      {"BLEU": BLEU(tokenize=bleu_tokenizer(tgt_lang))}, [list(references)],
                      test_type="bs", n_samples=samples)
    signatures, results = test()
    base, other = results["BLEU"]
    delta = other.score - base.score
    # sacreBLEU counts resamples strictly beyond the observed difference: with none (equal BLEU) that
    # would read as significant, so no difference gets p = 1
    p_value = 1.0 if delta == 0 else other.p_value
    return {"baseline_bleu": base.score, "baseline_ci95": base.ci, "system_bleu": other.score,
            "system_ci95": other.ci, "delta": delta, "p_value": p_value,
            "signature": str(signatures["BLEU"])}


def ladder_significance(hypotheses: dict[str, Sequence[str]], references: Sequence[str], tgt_lang: str,
                        samples: int = 1000) -> list[dict]:
    """The paired bootstrap between each two neighbouring rungs present (SMT→GNMT, GNMT→Transformer)."""
    rungs = [arch for arch in LADDER if arch in hypotheses]
    return [{"lower": lower, "upper": upper}
            | paired_bootstrap(hypotheses[lower], hypotheses[upper], references, tgt_lang, samples)
            for lower, upper in zip(rungs, rungs[1:], strict=False)]


def significance_text(step: dict) -> str:
    """One line for a ladder step, e.g. "… over phrase-based SMT: +0.55 BLEU (paired bootstrap p = 0.141)"."""
    return (f"{ARCH_NAMES[step['upper']]} over {ARCH_NAMES[step['lower']]}: {step['delta']:+.2f} BLEU "
            f"(paired bootstrap p = {step['p_value']:.3f})")


def bleu_gain(bleu: float, baseline: float) -> float | None:
    """Relative BLEU gain in % over ``baseline`` (the chapter's "+60 %" is relative to SMT)."""
    return None if baseline <= 0 else 100.0 * (bleu - baseline) / baseline


def ladder_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """The SMT → GNMT → Transformer table for one direction. ``rows`` hold at least ``arch``,
    ``bleu`` and ``chrf`` (plus optional ``train_s``, ``sentences_per_s``, ``steps``). Each row gets
    its BLEU gain over SMT and over the rung below, next to the chapter's figure."""
    claim = claims_for("translate")["gnmt_bleu_gain"]
    by_arch = {row["arch"]: row for row in rows}
    smt = by_arch.get("smt")
    out, previous = [], None
    for arch in [a for a in LADDER if a in by_arch] + [a for a in by_arch if a not in LADDER]:
        row = by_arch[arch]
        gain_smt = bleu_gain(row["bleu"], smt["bleu"]) if smt and arch != "smt" else None
        gain_prev = bleu_gain(row["bleu"], previous["bleu"]) if previous else None
        out.append({"model": ARCH_NAMES.get(arch, arch), "BLEU": row["bleu"], "chrF": row["chrf"],
                    "BLEU gain vs SMT": _pct(gain_smt), "gain vs rung below": _pct(gain_prev),
                    # the claim is about GNMT: beside the GNMT row only, never borrowed by another rung
                    "chapter": f"+{claim.value:g} % (GNMT vs SMT)" if arch == "gnmt" and smt else "",
                    "train time": _duration(row.get("train_s")),
                    "sentences/s": row.get("sentences_per_s", float("nan")),
                    "steps": row.get("steps") if row.get("steps") is not None else "—"})
        previous = row
    return pd.DataFrame(out)


def ladder_holds(rows: Sequence[dict]) -> bool | None:
    """SMT < GNMT < Transformer in BLEU, over the rungs present (None with fewer than two)."""
    scores = [row["bleu"] for arch in LADDER for row in rows if row["arch"] == arch]
    return None if len(scores) < 2 else all(a < b for a, b in zip(scores, scores[1:], strict=False))


def claim_row(rows: Sequence[dict]) -> dict[str, tuple[str, str]]:
    """Our figure for the chapter's claim (for ``Report.claims_table``)."""
    by_arch = {row["arch"]: row for row in rows}
    if "smt" not in by_arch:
        return {}
    ours = {}
    for arch in ("gnmt", "transformer"):
        if arch in by_arch:
            gain = bleu_gain(by_arch[arch]["bleu"], by_arch["smt"]["bleu"])
            ours[arch] = f"{_pct(gain)} ({ARCH_NAMES[arch]} vs SMT)"
    if not ours:
        return {}
    return {"gnmt_bleu_gain": ("; ".join(ours.values()), "relative corpus BLEU gain over our phrase-based SMT on "
                               "the same data (sacreBLEU)")}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.0f} %"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
