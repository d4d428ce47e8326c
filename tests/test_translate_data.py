"""Translation data, subwords and scoring: the shared corpora, broken folders, SentencePiece round
trips, and our BLEU/chrF wrapper against sacreBLEU itself."""

from __future__ import annotations

import gzip
import unicodedata
from pathlib import Path

import pytest

from mlcasebook.core.errors import DataError
from mlcasebook.translate import data as td
from mlcasebook.translate import evaluate as ev

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def needs(folder: str) -> Path:
    path = SHARED / folder
    if not path.is_dir():
        pytest.skip(f"shared corpus not found at {path}")
    return SHARED


# ---- shared corpora --------------------------------------------------------------------------
def test_tanaka_raw_both_directions():
    root = needs("tanaka-enja")
    dev = td.load_pair("ja-en", "dev", root)
    assert len(dev) == 500 and dev.src_lang == "ja" and dev.tgt_lang == "en"
    # KyTea tokens joined without spaces; Stanford-tokenized English detokenized (and lowercase)
    assert " " not in dev.source[1] and dev.source[1].endswith("。")
    assert dev.target[1] == "he lived a hard life."
    assert "i'm sorry, i've got to go back early." in dev.target[2]
    assert all(line == line.lower() for line in dev.target)
    reverse = td.load_pair("en-ja", "dev", root)
    assert reverse.source == dev.target and reverse.target == dev.source
    with pytest.raises(DataError, match="no 'test' split"):
        td.load_pair("ja-en", "test", root)


def test_multi30k_pairs_and_splits():
    root = needs("multi30k")
    test = td.load_pair("en-de", "test", root)
    assert len(test) == 1000 and test.corpus == "multi30k"
    assert test.source[0][0].isupper()  # raw, cased
    zero_shot = td.load_pair("de-fr", "dev", root, limit=5)
    assert len(zero_shot) == 5 and zero_shot.source[0] != zero_shot.target[0]


def test_tuning_split_is_carved_from_train_only():
    root = needs("multi30k")
    train = td.load_pair("en-de", "train", root, limit=3000)
    rest, tune = td.tuning_split(train)
    assert len(tune) == 300 and len(rest) + len(tune) == 3000  # capped at 10 % of a small train set
    assert sorted(rest.source + tune.source) == sorted(train.source)  # a partition of train
    again_rest, again_tune = td.tuning_split(train)
    assert again_tune.source == tune.source  # fixed seed
    dev = td.load_pair("en-de", "dev", root)
    assert not set(tune.source) & set(dev.source)


def test_unknown_pairs_and_codes():
    for bad, message in [("xx-en", "unknown language code"), ("ja-de", "no corpus"), ("en", "not a language pair"),
                         ("en-en", "into itself")]:
        with pytest.raises(DataError, match=message):
            td.parse_pair(bad)
    assert set(td.supported_pairs()) >= {"ja-en", "en-ja", "en-de", "de-en", "de-fr"}


# ---- broken folders ------------------------------------------------------------------------------
def write(folder: Path, name: str, lines: list[str], gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{line}\n" for line in lines)
    if gz:
        with gzip.open(folder / f"{name}.gz", "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        (folder / name).write_text(text, encoding="utf-8")


def test_local_folder_plain_or_gzip(tmp_path):
    write(tmp_path / "multi30k", "train.en", ["A dog runs.", "Two men talk."], gz=True)
    write(tmp_path / "multi30k", "train.de", ["Ein Hund rennt.", "Zwei Männer reden."])
    data = td.load_pair("de-en", "train", tmp_path)
    assert data.source == ["Ein Hund rennt.", "Zwei Männer reden."] and data.target[1] == "Two men talk."
    assert td.load_pair("en-de", "train", tmp_path / "multi30k").source[0] == "A dog runs."  # the corpus folder itself


def test_missing_file_and_folder(tmp_path):
    write(tmp_path / "multi30k", "train.en", ["A dog runs."])
    with pytest.raises(DataError, match=r"has no train\.fr"):
        td.load_pair("en-fr", "train", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        td.load_pair("en-fr", "train", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="tanaka corpus was not found") as caught:
        td.load_pair("ja-en", "train", tmp_path / "empty")
    assert "--data-dir" in caught.value.hint


def test_misaligned_lines(tmp_path):
    write(tmp_path / "tanaka-enja", "dev.ja", ["彼 は 学生 だ 。", "猫 が いる 。"])
    write(tmp_path / "tanaka-enja", "dev.en", ["he is a student ."])
    with pytest.raises(DataError, match="has 2 lines but .* has 1"):
        td.load_pair("ja-en", "dev", tmp_path)


def test_stanford_quotes_become_paired_quotes():
    assert td.detokenize_english("she said , '' i will tell on you . ''") == 'she said, "i will tell on you."'
    assert td.detokenize_english("i can 't swim .") == "i can't swim."


def test_download_entries_are_pinned():
    for corpus in td.CORPORA.values():
        downloads = corpus.downloads()
        assert downloads and all(len(d.checksum) == len("sha256:") + 64 for d in downloads)
        assert all("raw.githubusercontent.com" in d.url and d.url.endswith(d.filename) for d in downloads)


# ---- subwords -------------------------------------------------------------------------------------
def test_subword_round_trip_and_target_tokens(tmp_path):
    from mlcasebook.translate.subword import BOS_ID, EOS_ID, PAD_ID, Subwords

    root = needs("tanaka-enja")
    dev = td.load_pair("ja-en", "dev", root)
    model = Subwords.train(dev.source + dev.target, vocab_size=1500)
    model.save(tmp_path)
    loaded = Subwords.load(tmp_path)
    for text in dev.source[:20] + dev.target[:20] + ["Zwei Männer 😀 unseen characters."]:
        ids = loaded.encode(text, target_lang="en")
        assert ids[0] == loaded.token_id("<2en>")
        # target token dropped, byte fallback for unseen characters; SentencePiece's NFKC
        # normalisation folds full-width digits and letters (５ → 5)
        assert loaded.decode(ids) == unicodedata.normalize("NFKC", text)
    info = loaded.vocab_info()
    assert (info["pad_id"], info["bos_id"], info["eos_id"]) == (PAD_ID, BOS_ID, EOS_ID) and info["size"] <= 1500
    assert len({loaded.token_id(t) for t in ("<2en>", "<2de>", "<2fr>", "<2cs>", "<2ja>")}) == 5
    with pytest.raises(DataError, match="missing"):
        Subwords.load(tmp_path / "nothing")


# ---- scoring --------------------------------------------------------------------------------------
def test_scores_match_sacrebleu():
    import sacrebleu

    hyps = ["The cat sat on the mat.", "A dog runs in the park!", "Two men are talking."]
    refs = ["The cat is sitting on the mat.", "A dog is running in the park.", "Two men talk."]
    scores = ev.score(hyps, refs, "en")
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert "tok:13a" in scores.bleu_signature and scores.sentences == 3


def test_japanese_targets_use_mecab():
    import sacrebleu

    hyps, refs = ["彼は学生です。", "猫が好きだ。"], ["彼は学生だ。", "私は猫が好きです。"]
    scores = ev.score(hyps, refs, "ja")
    assert "tok:ja-mecab" in scores.bleu_signature
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="ja-mecab").score)
    assert scores.bleu > sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score  # 13a sees one "word" a line


def test_score_rejects_misaligned():
    with pytest.raises(DataError):
        ev.score(["a"], ["a", "b"], "en")


def test_ladder_table_and_claim():
    rows = [{"arch": "smt", "bleu": 20.0, "chrf": 45.0}, {"arch": "gnmt", "bleu": 30.0, "chrf": 55.0},
            {"arch": "transformer", "bleu": 33.0, "chrf": 58.0, "train_s": 600.0}]
    frame = ev.ladder_frame(rows)
    assert list(frame["BLEU gain vs SMT"]) == ["—", "+50 %", "+65 %"]
    assert list(frame["gain vs rung below"]) == ["—", "+50 %", "+10 %"]
    assert "+60 %" in frame["chapter"].iloc[1] and frame["train time"].iloc[2] == "10.0 min"
    without_gnmt = ev.ladder_frame([rows[0], rows[2]])
    assert not any(without_gnmt["chapter"])  # the GNMT claim is not lent to the Transformer row
    assert ev.ladder_holds(rows) is True
    assert ev.ladder_holds([rows[0], {"arch": "gnmt", "bleu": 19.0, "chrf": 0}]) is False
    assert "+50 %" in ev.claim_row(rows)["gnmt_bleu_gain"][0]


def test_paired_bootstrap_separates_a_real_gain_from_noise():
    references = [f"a small dog number {i} runs across the green grass in the park" for i in range(120)]
    weak = [r if i % 2 else "a cat" for i, r in enumerate(references)]  # half the sentences wrong
    strong = [r if i % 10 else "a cat" for i, r in enumerate(references)]  # a tenth wrong
    gain = ev.paired_bootstrap(weak, strong, references, "en", samples=200)
    assert gain["delta"] > 20 and gain["p_value"] < 0.05
    # as often wrong as ``weak``, on other sentences: a difference the resampling explains
    other = [r if i % 2 == 0 or i < 2 else "a cat" for i, r in enumerate(references)]
    noise = ev.paired_bootstrap(weak, other, references, "en", samples=200)
    assert abs(noise["delta"]) < 2 and noise["p_value"] > 0.2
    assert ev.paired_bootstrap(weak, list(weak), references, "en", samples=50)["p_value"] == 1.0
    steps = ev.ladder_significance({"transformer": strong, "smt": weak}, references, "en", samples=200)
    assert [(s["lower"], s["upper"]) for s in steps] == [("smt", "transformer")]
    assert "Transformer over phrase-based SMT" in ev.significance_text(steps[0])
    with pytest.raises(DataError):
        ev.paired_bootstrap(weak, strong[:-1], references, "en")
