"""The expert corpus: GNU Go games as SGF, and SGF folders read back as supervised examples."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mlcasebook.core.errors import DataError
from mlcasebook.go.corpus import generate_gnugo_games, is_held_out, read_sgf_examples
from mlcasebook.go.match import run_match

GNUGO = shutil.which("gnugo") or shutil.which("/usr/games/gnugo")


def test_sgf_folder_becomes_examples(tmp_path):
    run_match("random:1", "random:2", games=2, size=5, komi=0.5, sgf_dir=tmp_path)
    (tmp_path / "broken.sgf").write_text("(;GM[1]SZ[5];B[zz")  # unreadable
    (tmp_path / "other.sgf").write_text("(;GM[1]FF[4]SZ[9]RE[B+3];B[ee])")  # another board size
    examples, held_out, skipped = read_sgf_examples(tmp_path, size=5, history=2)
    assert held_out is None
    assert set(skipped) == {str(tmp_path / "broken.sgf"), str(tmp_path / "other.sgf")}
    assert examples.planes.shape[1:] == (13, 5, 5) and len(examples) > 10
    assert np.allclose(examples.policy.sum(1), 1) and set(np.unique(examples.policy)) == {0.0, 1.0}
    assert set(np.unique(examples.value)) <= {-1.0, 0.0, 1.0}
    # the move played is always legal in the position (the legal-moves plane marks it)
    moves = examples.policy[:, :-1].argmax(1)
    played_stone = examples.policy[:, :-1].max(1) > 0
    legal_plane = examples.planes[:, 5].reshape(len(examples), -1)
    assert legal_plane[played_stone, moves[played_stone]].all()
    with pytest.raises(DataError):
        read_sgf_examples(tmp_path / "missing", size=5)


def test_held_out_games_are_chosen_by_name_and_kept_whole(tmp_path):
    run_match("random:1", "random:2", games=6, size=5, komi=0.5, sgf_dir=tmp_path)
    names = sorted(tmp_path.glob("*.sgf"))
    fraction = 0.5
    chosen = [p for p in names if is_held_out(p, fraction)]
    assert 0 < len(chosen) < len(names), "pick a fraction that splits these six names"
    train, held_out, _ = read_sgf_examples(tmp_path, size=5, history=2, holdout=fraction)
    everything, none, _ = read_sgf_examples(tmp_path, size=5, history=2)
    assert none is None and len(train) + len(held_out) == len(everything)
    # whole games move: the held-out positions are exactly those of the chosen files
    only_chosen = tmp_path / "chosen"
    only_chosen.mkdir()
    for path in chosen:
        (only_chosen / path.name).write_bytes(path.read_bytes())
    assert len(read_sgf_examples(only_chosen, size=5, history=2)[0]) == len(held_out)
    # the split is a property of the name, so growing the corpus does not move old games
    assert [is_held_out(p, fraction) for p in names] == [is_held_out(p, fraction) for p in names]
    with pytest.raises(DataError, match="outside the held-out split"):
        read_sgf_examples(only_chosen, size=5, history=2, holdout=fraction)
    # a smaller corpus: the first files in name order
    first_two = tmp_path / "first_two"
    first_two.mkdir()
    for path in names[:2]:
        (first_two / path.name).write_bytes(path.read_bytes())
    assert len(read_sgf_examples(tmp_path, size=5, history=2, max_files=2)[0]) == \
        len(read_sgf_examples(first_two, size=5, history=2)[0])


@pytest.mark.skipif(GNUGO is None, reason="GNU Go is not installed (apt-get install gnugo)")
def test_gnugo_games_are_generated_and_readable(tmp_path):
    paths = generate_gnugo_games(tmp_path, games=2, level=0, size=7, komi=7, random_moves=2, seed=3)
    assert len(paths) == 2 and all(p.is_file() for p in paths)
    examples, _, skipped = read_sgf_examples(tmp_path, size=7, history=2)
    assert not skipped and len(examples) >= 10
    # the two random opening moves of each game are positions but not policy targets
    first_game = read_sgf_examples(_folder_with(tmp_path, paths[0]), size=7, history=2)[0]
    assert first_game.policy_weight[:2].tolist() == [0.0, 0.0] and first_game.policy_weight[2:].all()
    assert examples.policy_weight.sum() == len(examples) - 2 * len(paths)
    assert set(np.unique(examples.value)) <= {-1.0, 0.0, 1.0}  # komi 7 on 7x7 allows a draw
    # an interrupted run resumes: kept games are not replayed, a missing one comes back the same
    first = paths[1].read_bytes()
    paths[1].unlink()
    kept_time = paths[0].stat().st_mtime_ns
    again = generate_gnugo_games(tmp_path, games=2, level=0, size=7, komi=7, random_moves=2, seed=3)
    assert again == paths and paths[0].stat().st_mtime_ns == kept_time
    assert paths[1].read_bytes() == first


def _folder_with(tmp_path, path):
    folder = tmp_path / f"only_{path.stem}"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    return folder
