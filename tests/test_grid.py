"""The ablation grid: expansion, exp dir names, bad grid files, and the summary table."""

import json
import os
import re

import numpy as np
import pytest
import torch
import yaml

from asr_gr.analysis import probe as P

from asr_gr.bin import grid
from asr_gr.utils import ConfigError


def test_expand_systems_and_product_without_duplicates():
    g = {"systems": [{"aux": "none"}, {"aux": "mtl", "spk_layer": 3}],
         "product": {"aux": ["mtl", "adversarial"], "spk_layer": [3, 5], "semi": [False]}}
    systems = grid.expand(g, "g.yaml")
    tags = [grid.tag_of(s) for s in systems]
    assert tags == ["grid_none", "grid_mtl_l3", "grid_mtl_l5", "grid_adversarial_l3", "grid_adversarial_l5"]


@pytest.mark.parametrize("g, msg", [
    ({"systemz": []}, "unknown key 'systemz'"),
    ({"systems": [{"aux": "mtl", "layer": 2}]}, "system 1: unknown key 'layer'"),
    ({"systems": [{"aux": "mtl", "spk_layer": "2"}]}, "'spk_layer' has the wrong type"),
    ({"systems": [{"aux": "none", "semi": True}]}, "needs aux mtl or adversarial"),
    ({"systems": [{"aux": "adversarial", "untranscribed_ratio": 0.5}]}, "'untranscribed_ratio' needs 'semi: true'"),
    ({}, "no systems"),
])
def test_bad_grid_files_name_the_problem(g, msg):
    with pytest.raises(ConfigError, match=msg):
        grid.expand(g, "g.yaml")


def test_dry_run_and_skip_finished(tmp_path, capsys):
    (tmp_path / "g.yaml").write_text("systems:\n  - {aux: none}\n  - {aux: adversarial, spk_layer: 2, semi: true}\n")
    (tmp_path / "exp" / "grid_none").mkdir(parents=True)
    (tmp_path / "exp" / "grid_none" / ".grid_done").touch()
    grid.main(["--grid", str(tmp_path / "g.yaml"), "--exp-root", str(tmp_path / "exp"), "--dry-run", "--",
               "./asr.sh", "--nj", "1"])
    err = capsys.readouterr().err
    assert "grid_none is done; skipping" in err
    assert ("--aux adversarial --tag grid_adversarial_l2_semi --train-config conf/train.yaml "
            "--train-opts '--set aux_conf.spk_layer=2' --untranscribed-set untranscribed") in err


def test_adaptive_alpha_and_untranscribed_ratio_are_system_keys_with_their_own_exp_dirs(tmp_path, capsys):
    """Systems that differ only in adaptive_alpha (or a semi system in untranscribed_ratio) get exp dirs of
    their own and train with it (they used to be settable only through the config, sharing one exp dir)."""
    (tmp_path / "g.yaml").write_text("systems:\n  - {aux: adversarial, spk_layer: 3, lambda_schedule: adaptive}\n"
                                     "  - {aux: adversarial, spk_layer: 3, lambda_schedule: adaptive, "
                                     "adaptive_alpha: 0.03}\n")
    grid.main(["--grid", str(tmp_path / "g.yaml"), "--exp-root", str(tmp_path / "exp"), "--dry-run", "--",
               "./asr.sh", "--nj", "1"])
    err = capsys.readouterr().err
    assert ("--tag grid_adversarial_l3_adaptive --train-config conf/train.yaml --train-opts "
            "'--set aux_conf.spk_layer=3 --set aux_conf.lambda_schedule=adaptive'") in err
    assert ("--tag grid_adversarial_l3_adaptive_a0.03 --train-config conf/train.yaml --train-opts "
            "'--set aux_conf.spk_layer=3 --set aux_conf.lambda_schedule=adaptive --set aux_conf.adaptive_alpha=0.03'"
            ) in err
    (tmp_path / "g2.yaml").write_text("systems:\n  - {aux: adversarial, spk_layer: 3, semi: true, untranscribed_ratio: 0.1}\n")
    grid.main(["--grid", str(tmp_path / "g2.yaml"), "--exp-root", str(tmp_path / "exp"), "--dry-run", "--",
               "./asr.sh", "--nj", "1"])
    assert ("--tag grid_adversarial_l3_semi_r0.1 --train-config conf/train.yaml --train-opts "
            "'--set aux_conf.spk_layer=3 --set untranscribed_ratio=0.1' --untranscribed-set untranscribed"
            ) in capsys.readouterr().err
    with pytest.raises(ConfigError, match="'adaptive_alpha' has the wrong type"):
        grid.expand({"systems": [{"aux": "adversarial", "adaptive_alpha": "0.1"}]}, "g.yaml")


def _probe_dir(out, sep, set_name="probe", n_spk=8, per_spk=6):
    """A probe dir of synthetic 2-layer embeddings whose speaker separation is ``sep`` (same
    utterances, split and trials for every ``sep``)."""
    rng = np.random.default_rng(0)
    spk = [f"s{i // per_spk}" for i in range(n_spk * per_spk)]
    utts = [f"{s}-{i:02d}" for i, s in enumerate(spk)]
    centre, noise = rng.standard_normal((n_spk, 4)), rng.standard_normal((len(spk), 4))
    tr, te = P.split_by_speaker(utts, dict(zip(utts, spk)), 0.3, 0)
    enrol, test, target = P.make_trials(spk, tr, te, 1000, 0)
    groups = [spk[i] for i in test]
    rows, correct, scores = [], {}, []
    for layer, s in enumerate([1.0, sep]):
        x = torch.tensor(centre[[int(z[1:]) for z in spk]] * 3 * s + noise)
        ok = np.random.default_rng(1).random(len(te)) < 0.3 + 0.6 * s  # the same draws: right more often with sep
        correct[(layer, "linear")] = correct[(layer, "mlp")] = ok
        acc, ci = P.accuracy_ci(ok)
        scores.append(P.cosine_scores(x, tr, enrol, test))
        e, eci = P.eer_ci(scores[-1], target, groups)
        rows.append(P.ProbeRow(layer, 8, acc, acc, 100 / n_spk, ci, ci, e, eci))
    P.write_probe_dir(out, P.ProbeResult(set_name, rows, [utts[i] for i in te], [spk[i] for i in te], correct,
                                         ([utts[i] for i in enrol], [utts[i] for i in test], groups, target),
                                         scores))


def test_summary_table(tmp_path):
    exp = tmp_path / "exp" / "grid_adversarial_l2"
    (exp / "decode_test_greedy" / "score").mkdir(parents=True)
    (exp / "decode_train_heldout_greedy").mkdir(parents=True)
    (exp / "decode_test_greedy" / "score" / "result.json").write_text(json.dumps({"wer": 50.0, "cer": 20.0}))
    (exp / "decode_train_heldout_greedy" / "spk_acc.json").write_text(json.dumps({"acc_spk": 12.5}))
    _probe_dir(tmp_path / "exp" / "grid_none" / "probe_probe", sep=1.0)
    _probe_dir(exp / "probe_probe", sep=0.0)  # the adversarial system hides speakers at its top layer
    _probe_dir(exp / "probe_train_heldout", sep=0.0, set_name="train_heldout", n_spk=4)
    md = grid.summarise([{"aux": "none"}, {"aux": "adversarial", "spk_layer": 2}], tmp_path / "exp", "test",
                        "train_heldout")
    # enc. grad from the class defaults (weight 1, constant lambda 1): -1.00
    assert "| grid_adversarial_l2 | adversarial | 2 |  |  | -1.00 | 50.00 | 20.00 | - | 12.50 |" in md
    assert "## Speaker probing on `probe`" in md and "## Speaker probing on `train_heldout`" in md
    row = next(line for line in md.split("## Speaker probing on `probe`")[1].splitlines()
               if line.startswith("| grid_adversarial_l2"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert re.fullmatch(r"\d+ \[\d+, \d+\] / \d+\.\d \[\d+\.\d, \d+\.\d\]", cells[1])  # acc [CI] / EER [CI]
    d_acc, d_eer = cells[-1].split(" / ")  # paired Δ at the top layer: accuracy down, EER up, both CIs clear of 0
    assert re.fullmatch(r"-\d+ \[-\d+, -\d+\]", d_acc) and re.fullmatch(r"\+[\d.]+ \[\+[\d.]+, \+[\d.]+\]", d_eer)
    held = md.split("## Speaker probing on `train_heldout`")[1]
    assert "[n/a]" in held  # 4 speakers: the speaker bootstrap of the EER is n/a
    assert (tmp_path / "exp" / "grid_probe_probe.png").exists()
    assert (tmp_path / "exp" / "grid_probe_train_heldout.png").exists()


def test_summary_compares_with_the_baseline(tmp_path):
    def write(tag, errors):
        d = tmp_path / "exp" / tag / "decode_test_greedy" / "score"
        d.mkdir(parents=True)
        per_utt = {f"s{i % 3}-{i:02d}": {"spk": f"s{i % 3}", "ref_words": 5, "errors": e}
                   for i, e in enumerate(errors)}
        (d / "per_utt.json").write_text(json.dumps(per_utt))
        (d / "result.json").write_text(json.dumps({"wer": 100.0 * sum(errors) / (5 * len(errors)), "cer": 1.0}))

    write("grid_none", [1] * 30)
    write("grid_mtl_l3", [3] * 30)  # much worse on every utterance: significant
    md = grid.summarise([{"aux": "none"}, {"aux": "mtl", "spk_layer": 3}], tmp_path / "exp", "test",
                        "train_heldout")
    row = next(line for line in md.splitlines() if line.startswith("| grid_mtl_l3"))
    assert "+40.00 [+40.00, +40.00] n/a (3 speakers), p=0.00" in row


def test_seeds_expand_to_one_run_each_and_summarise_as_mean_and_sd(tmp_path, capsys):
    (tmp_path / "g.yaml").write_text("seeds: [1, 2]\nsystems:\n  - {aux: none}\n  - {aux: mtl, spk_layer: 3}\n")
    grid.main(["--grid", str(tmp_path / "g.yaml"), "--exp-root", str(tmp_path / "exp"), "--dry-run", "--",
               "./asr.sh"])
    err = capsys.readouterr().err
    for tag, seed in (("grid_none_s1", 1), ("grid_none_s2", 2), ("grid_mtl_l3_s1", 1), ("grid_mtl_l3_s2", 2)):
        assert f"--tag {tag} " in err
    assert "--train-opts '--set aux_conf.spk_layer=3 --set seed=2'" in err

    def write(tag, errors):
        d = tmp_path / "exp" / tag / "decode_test_greedy" / "score"
        d.mkdir(parents=True)
        per_utt = {f"s{i % 6}-{i:02d}": {"spk": f"s{i % 6}", "ref_words": 5, "errors": e}
                   for i, e in enumerate(errors)}
        (d / "per_utt.json").write_text(json.dumps(per_utt))
        (d / "result.json").write_text(json.dumps({"wer": 100.0 * sum(errors) / (5 * len(errors)), "cer": 1.0}))

    write("grid_none_s1", [1] * 30)
    write("grid_none_s2", [1] * 30)
    write("grid_mtl_l3_s1", [2] * 30)  # 40 % WER
    write("grid_mtl_l3_s2", [3] * 30)  # 60 % WER
    md = grid.summarise([{"aux": "none"}, {"aux": "mtl", "spk_layer": 3}], tmp_path / "exp", "test",
                        "train_heldout", seeds=[1, 2])
    row = next(line for line in md.splitlines() if line.startswith("| grid_mtl_l3 "))
    assert "| 50.00 ± 14.14 |" in row  # mean and s.d. of 40 and 60
    assert "+30.00 [+30.00, +30.00] [+30.00, +30.00], p=0.00" in row  # seed-averaged errors 2.5 vs 1


def test_summary_has_one_table_per_decoding_setup(tmp_path):
    """Greedy and LM decodes of the same runs: a table each, greedy first, each with its own Δ."""
    def write(tag, setup, errors):
        d = tmp_path / "exp" / tag / f"decode_test_{setup}" / "score"
        d.mkdir(parents=True)
        per_utt = {f"s{i % 6}-{i:02d}": {"spk": f"s{i % 6}", "ref_words": 5, "errors": e}
                   for i, e in enumerate(errors)}
        (d / "per_utt.json").write_text(json.dumps(per_utt))
        (d / "result.json").write_text(json.dumps({"wer": 100.0 * sum(errors) / (5 * len(errors)), "cer": 1.0}))

    write("grid_none", "greedy", [2] * 30)
    write("grid_mtl_l3", "greedy", [3] * 30)
    write("grid_none", "beam20_lm1_ws0", [1] * 30)
    write("grid_mtl_l3", "beam20_lm1_ws0", [1] * 30)
    write("grid_none", "beam4", [1] * 30)  # only one run has it: not a setup of the grid
    md = grid.summarise([{"aux": "none"}, {"aux": "mtl", "spk_layer": 3}], tmp_path / "exp", "test",
                        "train_heldout")
    assert "beam4" not in md
    greedy, lm = md.split("## Decoding `greedy`")[1].split("## Decoding `beam20_lm1_ws0`")
    assert "+20.00 [+20.00, +20.00] [+20.00, +20.00], p=0.00" in greedy
    assert "+0.00 [+0.00, +0.00] [+0.00, +0.00]" in lm and "| 20.00 |" in lm


@pytest.mark.parametrize("seeds", ["[]", "[1, 1]", "[1.5]", "3"])
def test_bad_seeds(tmp_path, seeds):
    with pytest.raises(ConfigError, match="seeds"):
        grid.seeds_of(yaml.safe_load(f"seeds: {seeds}"), "g.yaml")


@pytest.mark.parametrize("path", sorted((grid.Path(__file__).resolve().parents[1] / "egs").glob("*/asr1/conf/grid*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_grid_files_expand(path):
    g = yaml.safe_load(path.read_text())
    systems = grid.expand(g, str(path))
    assert systems[0] == {"aux": "none"} and grid.seeds_of(g, str(path))
    assert len({grid.tag_of(s) for s in systems}) == len(systems)


FAKE_ASR = r'''#!/usr/bin/env python3
# stands in for asr.sh: records when it ran, on which cores, in which Slurm job (with which comment) and
# with which arguments. SLEEP: a system's seconds; BARRIER=N: a system waits (at most 60 s) until N
# systems have started, and records how many it saw; FAIL_TAG: that system fails.
import json, os, subprocess, sys, time
args = sys.argv[1:]
tag = args[args.index("--tag") + 1] if "--tag" in args else "prep"
exp = os.environ["EXP"]
t0 = time.time()
print(f"fake asr.sh {tag} running", flush=True)
seen = 0
if tag != "prep" and os.environ.get("BARRIER"):
    os.makedirs(f"{exp}/started", exist_ok=True)
    open(f"{exp}/started/{tag}", "w").close()
    while (seen := len(os.listdir(f"{exp}/started"))) < int(os.environ["BARRIER"]) and time.time() - t0 < 60:
        time.sleep(0.1)
time.sleep(float(os.environ.get("SLEEP") or 1.5) if tag != "prep" else 0.3)
job = os.environ.get("SLURM_JOB_ID")
comment = subprocess.run(["squeue", "-h", "-j", job, "-o", "%k"], capture_output=True, text=True).stdout.strip() \
    if job else None
os.makedirs(f"{exp}/calls", exist_ok=True)
with open(f"{exp}/calls/{tag}.json", "w") as f:
    json.dump({"cores": sorted(os.sched_getaffinity(0)), "t0": t0, "t1": time.time(), "args": args, "job": job,
               "cpus": os.environ.get("SLURM_CPUS_PER_TASK"), "comment": comment, "seen": seen}, f)
if tag == os.environ.get("FAIL_TAG"):
    print("ERROR: data/train/text:7: empty transcript", flush=True)
    sys.exit(3)
'''


def _fake_grid(tmp_path, monkeypatch, fail_tag=""):
    (tmp_path / "g.yaml").write_text("systems:\n  - {aux: none}\n  - {aux: mtl, spk_layer: 2}\n"
                                     "  - {aux: adversarial, spk_layer: 2, semi: true}\n")
    fake = tmp_path / "asr.sh"
    fake.write_text(FAKE_ASR)
    fake.chmod(0o755)
    monkeypatch.setenv("EXP", str(tmp_path / "exp"))
    monkeypatch.setenv("FAIL_TAG", fail_tag)
    return ["--grid", str(tmp_path / "g.yaml"), "--exp-root", str(tmp_path / "exp"), "--jobs", "2",
            "--cores-per-job", "1", "--", str(fake), "--nj", "1"]


def _calls(tmp_path):
    return {p.stem: json.loads(p.read_text()) for p in (tmp_path / "exp" / "calls").glob("*.json")}


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs 2 cores to pin 2 jobs")
def test_parallel_grid_pins_each_system_to_its_own_cores_and_times_every_part(tmp_path, monkeypatch, capsys):
    grid.main(_fake_grid(tmp_path, monkeypatch))
    calls = _calls(tmp_path)
    assert set(calls) == {"prep", "grid_none", "grid_mtl_l2", "grid_adversarial_l2_semi"}
    systems = [c for t, c in calls.items() if t != "prep"]
    # the data preparation ran alone, before every system
    assert all(calls["prep"]["t1"] <= c["t0"] for c in systems)
    # one core each; at most 2 systems at once, and two at once did run, on different cores
    assert all(len(c["cores"]) == 1 for c in calls.values())
    for a in systems:
        at_once = [b for b in systems if b["t0"] < a["t1"] and a["t0"] < b["t1"]]
        assert len(at_once) <= 2
        assert len({tuple(b["cores"]) for b in at_once}) == len(at_once)
    assert any(a is not b and b["t0"] < a["t1"] and a["t0"] < b["t1"] for a in systems for b in systems)
    # the semi-supervised system (the longest) starts first
    err = capsys.readouterr().err
    started = [ln.split(":")[1].strip() for ln in err.splitlines() if ln.startswith("grid: grid_") and "(cores" in ln]
    assert started == ["grid_adversarial_l2_semi", "grid_none", "grid_mtl_l2"]
    # every part timed, its output in its own log, finished systems marked
    rows = [ln.split("\t") for ln in (tmp_path / "exp" / "grid_times.tsv").read_text().splitlines()]
    assert rows[0] == ["part", "cores", "seconds", "status", "finished"]
    assert {r[0]: (r[1], r[3]) for r in rows[1:]} == {
        "prep": ("1", "ok"), "grid_none": ("1", "ok"), "grid_mtl_l2": ("1", "ok"),
        "grid_adversarial_l2_semi": ("1", "ok"), "summary": (str(len(os.sched_getaffinity(0))), "ok")}
    assert all(float(r[2]) >= 1.4 for r in rows[1:] if r[0].startswith("grid_"))
    assert "fake asr.sh grid_mtl_l2 running" in (tmp_path / "exp" / "log" / "grid.grid_mtl_l2.log").read_text()
    assert (tmp_path / "exp" / "grid_none" / ".grid_done").exists()
    assert "the parts' times add up to" in err


def test_parallel_grid_failure_lets_the_others_finish_and_names_the_log(tmp_path, monkeypatch, capsys):
    semi = "grid_adversarial_l2_semi"  # starts first and fails: the systems after it still run
    args = _fake_grid(tmp_path, monkeypatch, fail_tag=semi)
    args[args.index("--cores-per-job") + 1] = "0"  # no pinning
    with pytest.raises(SystemExit):
        grid.main(args)
    err = capsys.readouterr().err
    log = tmp_path / "exp" / "log" / f"grid.{semi}.log"
    assert (f"ERROR: grid: 1 part(s) failed: {semi} (exit status 3, log {log}: ERROR: data/train/text:7: empty "
            "transcript)") in err
    assert _calls(tmp_path)["grid_mtl_l2"]["t0"] >= _calls(tmp_path)[semi]["t1"]
    assert (tmp_path / "exp" / "grid_none" / ".grid_done").exists()
    assert (tmp_path / "exp" / "grid_mtl_l2" / ".grid_done").exists()
    assert not (tmp_path / "exp" / semi / ".grid_done").exists()
    # the rerun skips the finished systems and keeps their times
    (tmp_path / "exp" / "calls").rename(tmp_path / "exp" / "calls_1")
    monkeypatch.setenv("FAIL_TAG", "")
    grid.main(args)
    assert set(_calls(tmp_path)) == {"prep", semi}
    rows = (tmp_path / "exp" / "grid_times.tsv").read_text()
    n = len(os.sched_getaffinity(0))
    assert f"grid_none\t{n}\t" in rows and f"{semi}\t{n}\t" in rows and "exit 3" not in rows
    # with every system done, a rerun only summarises: the preparation's time stays that of its last run
    prep = [r for r in rows.splitlines() if r.startswith("prep\t")]
    grid.main(args)
    assert set(_calls(tmp_path)) == {"prep", semi}
    assert [r for r in (tmp_path / "exp" / "grid_times.tsv").read_text().splitlines() if r.startswith("prep\t")] == prep


def test_parallel_grid_refuses_more_cores_than_it_has(tmp_path, monkeypatch):
    args = _fake_grid(tmp_path, monkeypatch)
    args[args.index("--jobs") + 1] = "1000"
    with pytest.raises(ConfigError, match=r"--jobs 1000 --cores-per-job 1 needs 1000 cores; this process may use"):
        grid.main.__wrapped__(args)


def _recipe_dir(tmp_path, monkeypatch):
    """A recipe dir with mini_synth's cmd.sh and conf/slurm.conf, as the current dir."""
    import shutil

    src = grid.Path(__file__).resolve().parents[1] / "egs" / "mini_synth" / "asr1"
    d = tmp_path / "recipe"
    (d / "conf").mkdir(parents=True)
    shutil.copy(src / "cmd.sh", d / "cmd.sh")
    shutil.copy(src / "conf" / "slurm.conf", d / "conf" / "slurm.conf")
    (d / "g.yaml").write_text("systems:\n  - {aux: none}\n  - {aux: mtl, spk_layer: 2}\n")
    monkeypatch.chdir(d)
    return d


def _dry(capsys, *recipe, grid_opts=()):
    grid.main(["--grid", "g.yaml", *grid_opts, "--dry-run", "--", "./asr.sh", *recipe])
    return {ln.split(":")[1].strip(): ln.split(": ", 2)[2] for ln in capsys.readouterr().err.splitlines()
            if ln.startswith("grid: ")}


def test_cmd_backend_slurm_makes_each_system_one_job_of_cmd_sh(tmp_path, monkeypatch, capsys):
    """--cmd-backend slurm in the recipe command: each system one job of cmd.sh's train_cmd (as the user
    edited it) asking for --nj cores, with asr.sh inside on the local backend; the data preparation here,
    its parts on Slurm. The recipe's --train-opts stay in front of the system's."""
    d = _recipe_dir(tmp_path, monkeypatch)
    cmd_sh = d / "cmd.sh"
    cmd_sh.write_text(cmd_sh.read_text().replace('train_cmd="utils/slurm.pl --config conf/slurm.conf"',
                                                  'train_cmd="utils/slurm.pl --config conf/slurm.conf --time 2:00:00"'))
    lines = _dry(capsys, "--nj", "3", "--cmd-backend", "slurm", "--train-opts", "--set num_threads=1")
    assert lines["prep"].startswith("./asr.sh --nj 3 --cmd-backend slurm ") and "local" not in lines["prep"]
    assert lines["grid_mtl_l2"] == (
        "utils/slurm.pl --config conf/slurm.conf --time 2:00:00 --num-threads 3 exp/log/grid.grid_mtl_l2.log "
        "./asr.sh --nj 3 --cmd-backend slurm --train-opts '--set num_threads=1' --stage 3 --stop-stage 6 --aux mtl "
        "--tag grid_mtl_l2 --train-config conf/train.yaml --train-opts '--set num_threads=1 --set "
        "aux_conf.spk_layer=2' --cmd-backend local --nj 3")
    # GPUs (--ngpu, or the config's ngpu): cuda_cmd --gpu N; --cores-per-job sets the cores and asr.sh's --nj
    lines = _dry(capsys, "--cmd-backend", "slurm", "--ngpu", "2", grid_opts=("--cores-per-job", "4"))
    assert lines["grid_none"].startswith("utils/slurm.pl --config conf/slurm.conf --gpu 1 --gpu 2 --num-threads 4 "
                                         "exp/log/grid.grid_none.log ./asr.sh ")
    assert lines["grid_none"].endswith(" --cmd-backend local --nj 4")
    (d / "conf" / "gpu.yaml").write_text("ngpu: 1\n")
    (d / "g.yaml").write_text("config: conf/gpu.yaml\nsystems:\n  - {aux: none}\n")
    assert " --gpu 1 --num-threads 2 exp/log/grid.grid_none.log " in _dry(capsys, "--cmd-backend", "slurm")["grid_none"]
    # --backend local: the systems' asr.sh here, their stages' parts as Slurm jobs (nested, as the user asks)
    lines = _dry(capsys, "--cmd-backend", "slurm", grid_opts=("--backend", "local"))
    assert lines["grid_none"].startswith("./asr.sh --cmd-backend slurm ") and "local" not in lines["grid_none"]


@pytest.mark.parametrize("recipe, setup, msg", [
    (["--cmd-backend", "sge"], None, r"cmd.sh \(cmd_backend=sge\): cmd.sh: --cmd-backend must be local or slurm, "
                                     "got 'sge'"),
    (["--cmd-backend", "slurm"], "no_cmd_sh", r"cmd.sh: not found: the 'slurm' backend runs each job through"),
    (["--cmd-backend", "slurm"], "no_cuda_cmd", r"cmd.sh sets no cuda_cmd for cmd_backend=slurm"),
    (["--cmd-backend", "slurm", "--num-nodes", "2"], None, r"--num-nodes 2: through the 'slurm' backend each system "
                                                           "is one job on one node"),
    (["--cmd-backend", "slurm", "--nj", "two"], None, r"--nj 'two': expected a whole number"),
])
def test_backend_problems_are_named(tmp_path, monkeypatch, recipe, setup, msg):
    d = _recipe_dir(tmp_path, monkeypatch)
    if setup == "no_cmd_sh":
        (d / "cmd.sh").unlink()
    elif setup == "no_cuda_cmd":
        text = (d / "cmd.sh").read_text()
        (d / "cmd.sh").write_text(text.replace('cuda_cmd="utils/slurm.pl --config conf/slurm.conf --gpu 1"', 'cuda_cmd=""'))
    with pytest.raises(ConfigError, match=msg):
        grid.main.__wrapped__(["--grid", "g.yaml", "--dry-run", "--", "./asr.sh", *recipe])
