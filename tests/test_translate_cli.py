"""The translator as a user meets it: train, text (argument, file, stdin), evaluate and the HTTP
service through the real CLI, on a tiny phrase-based model trained here on a toy corpus."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import pytest

from cli_helpers import run_case_cli

SUBJECTS = [("a dog", "ein Hund"), ("a cat", "eine Katze"), ("the man", "der Mann"), ("the woman", "die Frau"),
            ("a child", "ein Kind")]
VERBS = [("runs", "rennt"), ("sleeps", "schläft"), ("eats", "isst"), ("plays", "spielt")]
PLACES = [("in the park", "im Park"), ("on the street", "auf der Straße"), ("at home", "zu Hause"),
          ("in the water", "im Wasser"), ("on the grass", "auf dem Gras")]


def toy_corpus(root: Path) -> Path:
    """100 aligned en/de sentences laid out like Multi30k (train.en / train.de)."""
    folder = root / "multi30k"
    folder.mkdir(parents=True)
    pairs = [(f"{s} {v} {p}.", f"{sd} {vd} {pd}.") for s, sd in SUBJECTS for v, vd in VERBS for p, pd in PLACES]
    (folder / "train.en").write_text("".join(f"{en[0].upper()}{en[1:]}\n" for en, _ in pairs), encoding="utf-8")
    (folder / "train.de").write_text("".join(f"{de[0].upper()}{de[1:]}\n" for _, de in pairs), encoding="utf-8")
    return root


def run_main(capsys, *args, stdin: str | None = None) -> tuple[int, str, str]:
    return run_case_cli(capsys, "translate", *args, stdin=stdin)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A phrase-based en→de model trained through `translate train` on the toy corpus."""
    from mlcasebook.cli import main

    root = toy_corpus(tmp_path_factory.mktemp("toy"))
    out = root / "model"
    argv = ["mlcasebook", "translate", "train", "--pair", "en-de", "--arch", "smt", "--out", str(out),
            "--data-dir", str(root), "--no-track"]
    with mock.patch.object(sys, "argv", argv):
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, f"training failed with exit {exc.code}"
    return out


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLCASEBOOK_NO_PROGRESS", "1")


def test_train_writes_a_loadable_model(model):
    manifest = json.loads((model / "translator.json").read_text())
    assert manifest["arch"] == "smt" and manifest["directions"] == [["en", "de"]]
    assert manifest["settings"]["tuning_sentences"] == 10 and manifest["settings"]["train_sentences"] == 90
    assert (model / "smt.model").is_file()


def test_text_forms(model, capsys):
    code, out, err = run_main(capsys, "text", "A dog sleeps in the park.", "--from", "en", "--to", "de",
                              "--model", model)
    assert code == 0, err
    assert "Hund" in out and "Park" in out and len(out.splitlines()) == 1
    # the form: a bare first argument is the text
    code, bare, _ = run_main(capsys, "A dog sleeps in the park.", "--from", "en", "--to", "de", "--model", model)
    assert code == 0 and bare == out


def test_stdin_keeps_order_and_empty_lines(model, capsys):
    text = "A cat eats at home.\n\n   \nThe man runs on the street.\n"
    code, out, err = run_main(capsys, "-", "--from", "en", "--to", "de", "--model", model, stdin=text)
    assert code == 0, err
    lines = out.split("\n")
    assert len(lines) == 5 and lines[4] == ""  # four translations, each ending with a newline
    assert "Katze" in lines[0] and lines[1] == "" and lines[2] == "" and "Mann" in lines[3]


def test_file_mode(model, capsys, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("A child plays in the water.\n\nThe woman sleeps.\n", encoding="utf-8")
    target = tmp_path / "out.txt"
    code, _, err = run_main(capsys, "text", "--file", source, "--out", target, "--from", "en", "--to", "de",
                            "--model", model)
    assert code == 0, err
    lines = target.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 4 and "Kind" in lines[0] and lines[1] == "" and "Frau" in lines[2]
    code, _, err = run_main(capsys, "text", "--file", tmp_path / "missing.txt", "--from", "en", "--to", "de",
                            "--model", model)
    assert code == 2 and "does not exist" in err


def test_bad_input_gets_one_line_and_exit_2(model, capsys):
    code, out, err = run_main(capsys, "text", "hello", "--from", "xx", "--to", "de", "--model", model)
    assert code == 2 and "unknown language code" in err and "Traceback" not in err and not out
    code, _, err = run_main(capsys, "text", "Hallo", "--from", "de", "--to", "en", "--model", model)
    assert code == 2 and "not de-en" in err
    code, _, err = run_main(capsys, "text", "--from", "en", "--to", "de", "--model", model)
    assert code == 2 and "nothing to translate" in err


def test_missing_model_names_the_train_command(capsys, tmp_path):
    code, _, err = run_main(capsys, "text", "A dog runs.", "--from", "en", "--to", "de")
    assert code == 2 and "no trained en→de model" in err and "mlcasebook translate train --pair en-de" in err
    code, _, err = run_main(capsys, "text", "A dog runs.", "--from", "en", "--to", "de", "--model", tmp_path / "no")
    assert code == 2 and "does not exist" in err


def test_long_lines_are_split_or_truncated_and_mixed_scripts_warned(model, capsys):
    from mlcasebook.translate.translator import Translator

    translator = Translator.load(model)
    limit = translator.max_source_tokens
    many = " ".join(["A dog runs in the park."] * (limit // 5))         # many short sentences
    one = "A dog runs " + "and a cat runs " * (limit // 4) + "at home."  # one sentence over the limit
    outputs = translator.translate_lines([many, one, "A dog 走る in the park."], "en", "de")
    warnings = " ".join(translator.last_warnings)
    assert len(outputs) == 3 and outputs[0].count("Hund") == limit // 5
    assert "split into" in warnings and "truncated" in warnings and "line 3: mixed scripts" in warnings
    code, out, err = run_main(capsys, "text", one, "--from", "en", "--to", "de", "--model", model)
    assert code == 0 and out.strip() and "warning:" in err and "truncated" in err


def test_evaluate_on_files(model, capsys, tmp_path):
    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("A dog runs in the park.\nThe woman eats at home.\n", encoding="utf-8")
    ref.write_text("Ein Hund rennt im Park.\nDie Frau isst zu Hause.\n", encoding="utf-8")
    report = tmp_path / "scores.json"
    code, out, err = run_main(capsys, "evaluate", "--model", model, "--src", src, "--ref", ref, "--src-lang", "en",
                              "--tgt-lang", "de", "--json", report)
    assert code == 0, err
    scores = json.loads(report.read_text())
    assert scores["bleu"] > 50 and "tok:13a" in scores["bleu_signature"] and scores["sentences"] == 2
    assert scores["sentences_per_s"] > 0 and "BLEU" in out
    ref.write_text("Ein Hund rennt im Park.\n", encoding="utf-8")
    code, _, err = run_main(capsys, "evaluate", "--model", model, "--src", src, "--ref", ref, "--src-lang", "en",
                            "--tgt-lang", "de")
    assert code == 2 and "not aligned" in err


def test_http_service(model):
    from fastapi.testclient import TestClient

    from mlcasebook.translate.serve import create_app
    from mlcasebook.translate.translator import Translator

    client = TestClient(create_app(Translator.load(model)))
    answer = client.post("/translate", json={"lines": ["A cat sleeps.", "", "The man plays."], "from": "en",
                                             "to": "de"})
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["translations"]) == 3 and body["translations"][1] == "" and "Katze" in body["translations"][0]
    assert body["from"] == "en" and body["to"] == "de"
    assert client.post("/translate", json={"text": "A dog runs.", "from": "en", "to": "de"}).json()["translations"]
    bad_code = client.post("/translate", json={"text": "A dog.", "from": "xx", "to": "de"})
    assert bad_code.status_code == 400 and "unknown language code" in bad_code.json()["detail"]
    assert client.post("/translate", json={"text": "a", "lines": ["b"], "from": "en", "to": "de"}).status_code == 422
    assert client.post("/translate", json={"from": "en", "to": "de"}).status_code == 422
    assert client.get("/health").json()["directions"] == ["en-de"]


def test_neural_train_time_counts_the_vocabulary_and_adds_up_over_resumed_runs(tmp_path):
    """The reported train time of a neural model is its vocabulary plus its training loop summed over
    every session, so a run stopped and resumed reports the whole, and the budget covers both."""
    from mlcasebook.translate.translator import train_translator

    root = toy_corpus(tmp_path / "data")
    options = {"d_model": 16, "ff_dim": 32, "heads": 2, "enc_layers": 1, "dec_layers": 1, "eval_every": 5,
               "batch_tokens": 200}
    common = dict(data_dir=root, track=False, progress=False, vocab_size=330, tuning_size=10, nmt_options=options)
    first = train_translator("en-de", "transformer", tmp_path / "m", budget_minutes=0.05, **common).record
    assert first["train_seconds"] == pytest.approx(first["vocabulary_seconds"] + first["nmt_train_seconds"])
    assert first["vocabulary_seconds"] > 0
    resumed = train_translator("en-de", "transformer", tmp_path / "m", budget_minutes=0.12, **common).record
    assert resumed["vocabulary_seconds"] == first["vocabulary_seconds"]  # read back, not retrained
    assert resumed["steps"] > first["steps"] and resumed["train_seconds"] > first["train_seconds"]
    assert resumed["train_seconds"] == pytest.approx(resumed["vocabulary_seconds"] + resumed["nmt_train_seconds"])


def test_multilingual_model_serves_its_directions_and_zero_shot_keeps_the_users_case(tmp_path):
    """One model over Tanaka (lowercase English) and Multi30k (cased) directions: every trained direction
    and an untrained one (zero-shot, said so) translate, and cased English input is not lowercased."""
    from mlcasebook.translate.translator import Translator, train_translator

    root = toy_corpus(tmp_path / "data")
    french = {"ein Hund": "un chien", "eine Katze": "un chat", "der Mann": "l'homme", "die Frau": "la femme",
              "ein Kind": "un enfant"}
    (root / "multi30k" / "train.fr").write_text("".join(
        f"{french[sd].capitalize()} court.\n" for _s, sd in SUBJECTS for _ in range(20)), encoding="utf-8")
    tanaka = root / "tanaka-enja"
    tanaka.mkdir()
    japanese = {"a dog": "犬", "a cat": "猫", "the man": "男", "the woman": "女", "a child": "子供"}
    (tanaka / "train.ja").write_text("".join(f"{japanese[s]} が 走る 。\n" for s, _ in SUBJECTS * 20), encoding="utf-8")
    (tanaka / "train.en").write_text("".join(f"{s} runs .\n" for s, _ in SUBJECTS * 20), encoding="utf-8")
    options = {"d_model": 16, "ff_dim": 32, "heads": 2, "enc_layers": 1, "dec_layers": 1, "eval_every": 5,
               "batch_tokens": 200}
    record = train_translator("ja-en,en-ja,en-de,de-en,en-fr", "multilingual", tmp_path / "m", data_dir=root,
                              budget_minutes=0.05, track=False, progress=False, vocab_size=400, tuning_size=10,
                              nmt_options=options).record
    assert record["languages"] == ["ja", "en", "de", "fr"] and record["steps"] > 0
    assert record["lowercase_source"] is False  # English also came cased (Multi30k): keep what the user typed
    model = Translator.load(tmp_path / "m")
    assert model._prepare("A Dog runs.") == "A Dog runs."
    for src, tgt in [("en", "ja"), ("ja", "en"), ("en", "de"), ("en", "fr")]:
        outputs, warnings = model.translate_report(["a dog runs."], src, tgt)
        assert len(outputs) == 1 and not any("zero-shot" in w for w in warnings)
    outputs, warnings = model.translate_report(["Ein Hund rennt im Park."], "de", "fr")  # never trained
    assert len(outputs) == 1 and any("zero-shot" in w for w in warnings)
    with pytest.raises(Exception, match="not cs-en"):
        model.translate_lines(["Pes běží."], "cs", "en")  # a language the model never saw

