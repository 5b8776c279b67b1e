from asr_gr.score.wer import score, utterance_counts, write_reports


def test_counts_match_hand_alignment():
    c, _ = utterance_counts("A B C D", "A X C E D")
    assert (c.corr, c.sub, c.dele, c.ins, c.ref) == (3, 1, 0, 1, 4)
    c, _ = utterance_counts("A B", "")
    assert (c.dele, c.err, c.snt_err) == (2, 2, 1)


def test_per_speaker_report(tmp_path):
    refs = {"s1-1": "GO LEFT NOW", "s1-2": "STOP", "s2-1": "TURN RIGHT"}
    hyps = {"s1-1": "GO LEFT NOW", "s1-2": "STOP", "s2-1": "TURN LIGHT HERE"}
    summary = write_reports(score(refs, hyps, {"s1-1": "s1", "s1-2": "s1", "s2-1": "s2"}), tmp_path)
    assert summary["wer"] == round(100 * 2 / 6, 2)
    result = (tmp_path / "result.txt").read_text()
    assert "%WER 33.33 [ 2 / 6, 1 ins, 0 del, 1 sub ]" in result
    wer_table = (tmp_path / "per_spk.txt").read_text().split("\n\n")[0]
    assert wer_table in result
    rows = {line.split("|")[0].strip(): line for line in wer_table.splitlines() if "|" in line}
    assert rows["s1"].split()[-2:] == ["0.0", "0.0"]  # Err, S.Err of the error-free speaker
    assert rows["s2"].split()[-2:] == ["100.0", "100.0"]  # 2 errors / 2 words, 1 of 1 sentence wrong
    assert "Median" in result
    per_utt = (tmp_path / "per_utt.txt").read_text()
    block = per_utt.split("id: (s2-1)")[1]
    ref, hyp, ev = (ln.split(":", 1)[1] for ln in block.strip().splitlines()[1:4])
    assert ref.split() in (["turn", "RIGHT", "***"], ["turn", "***", "RIGHT"])  # errors upper-case, gap ***
    assert hyp.split() == ["turn", "LIGHT", "HERE"]
    assert sorted(ev.split()) == ["I", "S"]


def test_confusions_normalisation_and_per_utt_json(tmp_path):
    import json

    refs = {"a-1": "Go left, now!", "a-2": "STOP here", "b-1": "turn LEFT"}
    hyps = {"a-1": "go right now please", "a-2": "stop", "b-1": "turn right"}
    u2s = {"a-1": "A", "a-2": "A", "b-1": "B"}
    raw = score(refs, hyps, u2s)
    assert raw.total["word"].err > 4  # case and punctuation count as errors without normalisation
    rep = score(refs, hyps, u2s, lowercase=True, remove_punct=True, tokenize=lambda t: list(t.replace(" ", "_")))
    assert (rep.total["word"].sub, rep.total["word"].dele, rep.total["word"].ins) == (2, 1, 1)
    summary = write_reports(rep, tmp_path)
    assert "ter" in summary and summary["wer"] == round(100 * 4 / 7, 2)
    result = (tmp_path / "result.txt").read_text()
    assert result.splitlines()[0] == "normalisation: lowercase=yes remove_punct=yes"
    conf = (tmp_path / "confusions.txt").read_text()
    assert "   1:     2  ->  left ==> right" in conf  # the most frequent substitution, counted twice
    assert "here" in conf.split("DELETIONS")[1].split("INSERTIONS")[0]
    assert "please" in conf.split("INSERTIONS")[1]
    per_utt = json.loads((tmp_path / "per_utt.json").read_text())
    assert per_utt["b-1"] == {**per_utt["b-1"], "spk": "B", "ref_words": 2, "errors": 1, "sub": 1, "ins": 0}
    assert per_utt["a-2"]["del"] == 1 and per_utt["a-1"]["ref"] == "go left now"
    assert json.loads((tmp_path / "result.json").read_text())["num_spk"] == 2


def test_results_per_dataset_tables(tmp_path):
    from asr_gr.bin.results import dataset_tables

    for name in ("sysA", "sysB"):
        exp = tmp_path / name
        exp.mkdir()
        (exp / "config.yaml").write_text("aux: none\n")
        for s in ("dev", "test"):
            write_reports(score({"u1": "A B C D"}, {"u1": "A X C" if name == "sysB" else "A B C D"}, {"u1": "s"}),
                          exp / f"decode_{s}_greedy" / "score")
    md = dataset_tables(tmp_path)
    assert "## dev_greedy" in md and "## test_greedy" in md
    assert "| system | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |" in md
    assert "| sysB | 1 | 4 | 50.0 | 25.0 | 25.0 | 0.0 | 50.0 | 100.0 |" in md
