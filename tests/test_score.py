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
