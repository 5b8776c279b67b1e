"""The ablation grid: train, decode, score and probe every system of a grid file, skipping finished
ones, then summarise them side by side in exp/grid.md (and the probe curves per probe set in
exp/grid_probe_<set>.png).

    python -m asr_gr.bin.grid --grid conf/grid.yaml -- ./asr.sh --train-set train ...

Everything after ``--`` is the recipe's asr.sh command with its corpus options; the grid adds
``--stage/--stop-stage/--aux/--tag/--train-opts/--untranscribed-set`` per system. A grid file
(YAML) lists systems explicitly and/or as a product::

    config: conf/train.yaml         # the base training config
    untranscribed_set: untranscribed
    systems:                        # explicit systems
      - {aux: none}
      - {aux: adversarial, spk_layer: 3, semi: true}
    decode_setup: greedy            # decode dirs summarised, exp/<sys>/decode_<test_set>_<setup>: one or a list
                                    # (default: every setup all runs were scored with, one table each)
    product:                        # every combination of the listed values
      aux: [mtl, adversarial]
      spk_layer: [2, 5]
      spk_lambda: [0.5]
      semi: [false]
    seeds: [1, 2]                   # train every system once per seed (exp dirs <tag>_s<seed>)

With several seeds the summary gives each system's mean ± s.d. over seeds, and the difference to the
baseline of the seed-averaged per-utterance errors with its paired-bootstrap intervals.

Where the systems run: here (``--jobs N --cores-per-job C``: N at once, each pinned to C cores), or, with
``--backend slurm`` (the default when the recipe command has ``--cmd-backend slurm``), each system and
seed as one job of the recipe's cmd.sh (``asr_gr.launch.cmdsh``): its train_cmd, or cuda_cmd ``--gpu N``
when --ngpu or the config's ngpu asks for GPUs, with ``--num-threads C``; inside the job asr.sh runs
stages 3-6 with ``--cmd-backend local --nj C``. The data preparation (stages 1-2) runs here first, alone,
its parts through the recipe's own --cmd-backend. Every system's output goes to exp/log/grid.<tag>.log;
a failed one lets the others finish and is named with its log and the log's last error line; a rerun
redoes only the systems without exp/<tag>/.grid_done; SIGINT/SIGTERM stop (cancel) every running one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.bin.results import decode_dir, heldout_acc, measured_mean_lambda
from asr_gr.config import load_yaml
from asr_gr.launch.cmdsh import BackendJobs, cmd_sh_commands
from asr_gr.launch.jobs import last_error_line
from asr_gr.launch.local import kill_groups, interrupts_raise
from asr_gr.utils import ConfigError, DataError, TrainingError, atomic_write_text

SYSTEM_KEYS = {"aux": str, "spk_layer": int, "spk_lambda": (int, float), "spk_weight": (int, float),
               "lambda_schedule": str, "adaptive_alpha": (int, float), "semi": bool,
               "untranscribed_ratio": (int, float)}
# the system keys that are aux_conf values of the training config (--set aux_conf.<key>=...)
AUX_CONF_KEYS = ("spk_layer", "spk_lambda", "spk_weight", "lambda_schedule", "adaptive_alpha")
GRID_KEYS = {"config", "untranscribed_set", "systems", "product", "test_set", "heldout_set", "seeds",
             "decode_setup"}


def seeds_of(grid: dict, source: str) -> list:
    """The grid's seeds ([None]: one run per system with the config's own seed)."""
    seeds = grid.get("seeds")
    if seeds is None:
        return [None]
    if not isinstance(seeds, list) or not seeds or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds):
        raise ConfigError(f"{source}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: 'seeds' lists a seed twice: {seeds!r}")
    return seeds


def expand(grid: dict, source: str) -> list[dict]:
    """The grid's systems, in file order, without duplicates; each key checked."""
    unknown = set(grid) - GRID_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key '{sorted(unknown)[0]}'; known: {', '.join(sorted(GRID_KEYS))}")
    systems = list(grid.get("systems") or [])
    product = grid.get("product") or {}
    if product:
        keys = list(product)
        for values in itertools.product(*(product[k] if isinstance(product[k], list) else [product[k]]
                                          for k in keys)):
            systems.append(dict(zip(keys, values)))
    out, seen = [], set()
    for i, s in enumerate(systems):
        if not isinstance(s, dict):
            raise ConfigError(f"{source}: system {i + 1} must be a mapping, got {s!r}")
        for k, v in s.items():
            if k not in SYSTEM_KEYS:
                raise ConfigError(f"{source}: system {i + 1}: unknown key '{k}'; known: "
                                  f"{', '.join(sorted(SYSTEM_KEYS))}")
            if not isinstance(v, SYSTEM_KEYS[k]) or (SYSTEM_KEYS[k] is int and isinstance(v, bool)):
                raise ConfigError(f"{source}: system {i + 1}: '{k}' has the wrong type: {v!r}")
        s = dict(s)
        s.setdefault("aux", "none")
        if s.get("semi") and s["aux"] == "none":
            raise ConfigError(f"{source}: system {i + 1}: semi-supervised training needs aux mtl or adversarial")
        if "untranscribed_ratio" in s and not s.get("semi"):
            raise ConfigError(f"{source}: system {i + 1}: 'untranscribed_ratio' needs 'semi: true' (it sets how many "
                              "untranscribed batches go with each transcribed one)")
        if s["aux"] == "none":
            s = {"aux": "none"}  # speaker-head options mean nothing without a head
        if s.get("semi") is False:
            del s["semi"]
        key = json.dumps(s, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(s)
    if not out:
        raise ConfigError(f"{source}: no systems (give 'systems' or 'product')")
    return out


def tag_of(s: dict, seed: int | None = None) -> str:
    suffix = "" if seed is None else f"_s{seed}"
    if s["aux"] == "none":
        return "grid_none" + suffix
    parts = ["grid", s["aux"]]
    if "spk_layer" in s:
        parts.append(f"l{s['spk_layer']}")
    if "spk_lambda" in s:
        parts.append(f"lam{s['spk_lambda']}")
    if "spk_weight" in s:
        parts.append(f"w{s['spk_weight']}")
    if "lambda_schedule" in s:
        parts.append(s["lambda_schedule"])
    if "adaptive_alpha" in s:
        parts.append(f"a{s['adaptive_alpha']}")
    if s.get("semi"):
        parts.append("semi")
    if "untranscribed_ratio" in s:
        parts.append(f"r{s['untranscribed_ratio']}")
    return "_".join(parts) + suffix


def system_args(s: dict, config: str, untranscribed_set: str, seed: int | None = None,
                train_opts: str | None = None) -> list[str]:
    """asr.sh's options for system ``s``; ``train_opts``: the recipe command's own --train-opts, kept
    in front of the system's (asr.sh takes the last --train-opts only)."""
    sets = [f"--set aux_conf.{k}={s[k]}" for k in AUX_CONF_KEYS if k in s]
    if "untranscribed_ratio" in s:
        sets.append(f"--set untranscribed_ratio={s['untranscribed_ratio']}")
    if seed is not None:
        sets.append(f"--set seed={seed}")
    opts = " ".join(x for x in [train_opts, *sets] if x)
    args = ["--aux", s["aux"], "--tag", tag_of(s, seed), "--train-config", config, "--train-opts", opts]
    if s.get("semi"):
        args += ["--untranscribed-set", untranscribed_set]
    return args


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _mean_sd(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{m:.2f} ± {sd:.2f}"


def _probe_sections(systems: list[dict], exp_root: Path, seeds: list) -> list[str]:
    """Per probe set (every exp/<run>/probe_<set>/probe.tsv): per run (system x seed) and layer the
    linear-probe accuracy and the verification EER with 95 % CIs, the paired difference to the
    baseline run of the same seed at the top layer, and exp/grid_probe_<set>.png."""
    from asr_gr.analysis.probe import (SATURATION_NOTE, compare_probe_dirs, fmt_ci, plot_probe_curves, read_tsv,
                                       saturation, saturation_short)

    base = next((s for s in systems if s["aux"] == "none"), None)
    runs = [(s, seed, tag_of(s, seed)) for s in systems for seed in seeds]
    sets = sorted({p.parent.name[len("probe_"):] for _, _, t in runs for p in (exp_root / t).glob("probe_*/probe.tsv")})
    lines = []
    for name in sets:
        probes = {t: read_tsv(exp_root / t / f"probe_{name}" / "probe.tsv") for _, _, t in runs
                  if (exp_root / t / f"probe_{name}" / "probe.tsv").exists()}
        n = max(len(r) for r in probes.values())
        chance = next(iter(probes.values()))[0].chance
        lines += ["", f"## Speaker probing on `{name}`", "",
                  f"Per layer (0 = input features): linear-probe identification accuracy % [95% CI] / "
                  f"verification EER % [95% CI] (chance {chance:.1f} % / 50 %), one row per trained run. Δ top: "
                  f"the paired difference to the baseline run of the same seed at layer {n - 1} (same "
                  f"utterances and trials; accuracy, then EER). Curves: `grid_probe_{name}.png`.", "",
                  "| run |" + "".join(f" L{i} |" for i in range(n)) + " Δ top vs baseline |",
                  "|---|" + "---|" * (n + 1)]
        flagged = []
        for s, seed, t in runs:
            if t not in probes:
                continue
            rows = probes[t]
            sat = saturation_short(saturation(rows), ("linear", "eer"))  # the two probes shown here
            flagged += [f"`{t}`: {sat}"] if sat else []
            cells = [f"{fmt_ci(r.linear_acc, r.linear_ci, '.0f')} / {fmt_ci(r.eer, r.eer_ci, '.1f')}" for r in rows]
            cells += [""] * (n - len(rows))
            delta, bt = "-", tag_of(base, seed) if base is not None else None
            if bt is not None and t != bt and bt in probes:
                try:
                    d = compare_probe_dirs(exp_root / bt / f"probe_{name}", exp_root / t / f"probe_{name}")
                    if len(d) == n:
                        delta = f"{fmt_ci(*d[-1].linear, '.0f', sign=True)} / {fmt_ci(*d[-1].eer, '.1f', sign=True)}"
                except DataError as e:
                    delta = f"n/a ({e.reason.split(';')[0]})"
            lines.append(f"| {t}{' ‡' if sat else ''} | " + " | ".join(cells) + f" | {delta} |")
        if flagged:
            lines += ["", f"‡ {SATURATION_NOTE}: " + "; ".join(flagged) + "."]
        plot_probe_curves(probes, exp_root / f"grid_probe_{name}.png",
                          title=f"Speaker probing per layer on '{name}': the grid")
    return lines


def _setups_of(systems: list[dict], exp_root: Path, test_set: str, seeds: list) -> list[str]:
    """The decoding setups every run was scored with on ``test_set`` (greedy first), from the dir names."""
    found, prefix = None, f"decode_{test_set}_"
    for s in systems:
        for seed in seeds:
            have = {p.parent.parent.name[len(prefix):]
                    for p in (exp_root / tag_of(s, seed)).glob(f"{prefix}*/score/result.json")}
            if have:
                found = have if found is None else found & have
    return sorted(found or {"greedy"}, key=lambda x: (x != "greedy", x))


def summarise(systems: list[dict], exp_root: Path, test_set: str, heldout_set: str,
              seeds: list | None = None, config: str | None = None, setup: str | list | None = None) -> str:
    """exp/grid.md: per decoding setup (``setup``: one or a list; None: every setup all runs were scored
    with), per system WER/CER on the test set (mean ± s.d. over seeds), the WER difference to the
    baseline with its 95% paired-bootstrap intervals (utterances; speakers where there are >= 5) and
    p-value, the effective encoder-gradient scale of the speaker head, speaker accuracy of the aux
    head; then per probe set, probe accuracy and EER per layer with CIs (exp/grid_probe_<set>.png)."""
    from asr_gr.models.speaker import encoder_grad_scale
    from asr_gr.score.significance import load_system, paired_bootstrap, seed_average

    seeds = seeds or [None]
    base_conf = (load_yaml(config) if config and Path(config).exists() else {}).get("aux_conf") or {}
    setups = ([setup] if isinstance(setup, str) else list(setup) if setup
              else _setups_of(systems, exp_root, test_set, seeds))

    def score_dir(s, seed, setup):
        return decode_dir(exp_root / tag_of(s, seed), test_set, setup) / "score"

    def averaged(s, setup):
        runs = [load_system(score_dir(s, seed, setup), tag_of(s, seed)) for seed in seeds
                if (score_dir(s, seed, setup) / "per_utt.json").exists()]
        return (seed_average(runs, tag_of(s)), len(runs)) if runs else (None, 0)

    base = next((s for s in systems if s["aux"] == "none"), None)
    n_seeds = len(seeds) if seeds != [None] else 1
    lines = ["# Ablation grid", "",
             f"Test set `{test_set}` (unseen speakers), decoding "
             + ", ".join(f"`{x}`" for x in setups) + " (one table each)"
             + (f"; every system trained with {n_seeds} seeds ({', '.join(map(str, seeds))}): figures are "
                "mean ± s.d. over seeds" if n_seeds > 1 else "") + ". "
             "Δ WER: difference to the baseline"
             + (" of the seed-averaged per-utterance errors" if n_seeds > 1 else "")
             + ", with its 95% confidence intervals (paired bootstrap over utterances, and over speakers "
             "when there are at least 5; 1000 draws) and the utterance-level p-value. enc. grad: the "
             "effective scale of the speaker loss's gradient reaching the encoder, averaged over training "
             f"(+w for mtl, −w·mean(λ) for adversarial; the adaptive schedule's λ as logged at every step). "
             f"spk acc: the aux head on `{heldout_set}`. "
             "Speaker probing of the frozen layers: one section per probe set below.", ""]
    head = ("| system | aux | layer | λ | semi | enc. grad | WER % | CER % | Δ WER [95% CI utt] [95% CI spk], p "
            "| spk acc % |")
    # the aux head's accuracy on the held-out set does not depend on the decoding setup: read once per run
    acc = {tag_of(s): [heldout_acc(exp_root / tag_of(s, seed), heldout_set, setups) for seed in seeds]
           for s in systems}
    for setup in setups:
        baseline = averaged(base, setup)[0] if base else None
        if len(setups) > 1:
            lines += [f"## Decoding `{setup}`", ""]
        lines += [head, "|" + "---|" * 10]
        for s in systems:
            res = [_json(score_dir(s, seed, setup) / "result.json") for seed in seeds]
            delta = "-"
            if baseline is not None and s is not base:
                system, _ = averaged(s, setup)
                if system is not None:
                    r = paired_bootstrap(baseline, system)
                    delta = (f"{r.delta:+.2f} [{r.ci[0]:+.2f}, {r.ci[1]:+.2f}] {r.spk_ci_text()}, "
                             f"p={r.p:.2f}")
            aux_conf = dict(base_conf, **{k: s[k] for k in AUX_CONF_KEYS if k in s})
            grad = encoder_grad_scale(s["aux"], aux_conf,  # adaptive: the λ its runs logged, all steps
                                      measured_mean_lambda(*(exp_root / tag_of(s, seed) for seed in seeds)))
            cells = [tag_of(s), s["aux"], str(s.get("spk_layer", "")), str(s.get("spk_lambda", "")),
                     "yes" if s.get("semi") else "", f"{grad:+.2f}" if grad is not None else "-",
                     _mean_sd([r["wer"] for r in res if r]), _mean_sd([r["cer"] for r in res if r]), delta,
                     _mean_sd([a["acc_spk"] for a in acc[tag_of(s)] if a])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += _probe_sections(systems, exp_root, seeds)
    md = "\n".join(lines) + "\n"
    atomic_write_text(exp_root / "grid.md", md)
    return md


def _pin_sets(jobs: int, cores_per_job: int) -> list[list[int] | None]:
    """One core set per job slot: slot i gets the i-th run of ``cores_per_job`` cores this process may
    use; ``[None] * jobs`` when not pinning (cores_per_job 0)."""
    if jobs < 1 or cores_per_job < 0:
        raise ConfigError(f"--jobs must be >= 1 and --cores-per-job >= 0, got {jobs} and {cores_per_job}")
    if not cores_per_job:
        return [None] * jobs
    cores = sorted(os.sched_getaffinity(0))
    if jobs * cores_per_job > len(cores):
        raise ConfigError(f"--jobs {jobs} --cores-per-job {cores_per_job} needs {jobs * cores_per_job} cores; "
                          f"this process may use {len(cores)} ({_cores_str(cores)})")
    return [cores[i * cores_per_job:(i + 1) * cores_per_job] for i in range(jobs)]


def _cores_str(cores) -> str:
    return ",".join(map(str, cores)) if cores else "any"


def _quoted(cmd: list[str]) -> str:
    return " ".join(f"'{c}'" if " " in c or not c else c for c in cmd)


def _shown(cmd: list[str], log: Path, backend: BackendJobs | None) -> str:
    """A part's command as printed: through a backend, as Kaldi shows it: ``<backend> <log> <command>``."""
    return _quoted(cmd) if backend is None else f"{_quoted([*backend.words, str(log)])} {_quoted(cmd)}"


TIMES_HEADER = "part\tcores\tseconds\tstatus\tfinished\n"


class _Times:
    """exp/grid_times.tsv: each part's wall time (data preparation, then one row per system and seed,
    then the summary) and the number of cores it ran on (pinned, else all this process may use),
    rewritten atomically after each part; rows of parts this run did not do are kept from the last run
    that did them (their sum is the grid's time on one slot of that many cores)."""

    def __init__(self, path: Path):
        self.path, self.rows = path, {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines()[1:]:
                f = line.split("\t")
                if len(f) == 5:
                    self.rows[f[0]] = f

    def add(self, part: str, cores, seconds: float, status: str) -> None:
        """``cores``: the cores it was pinned to, a job's core count, or None (every core this process may use)."""
        n = cores if isinstance(cores, int) else len(cores or os.sched_getaffinity(0))
        self.rows[part] = [part, str(n), f"{seconds:.1f}", status,
                           time.strftime("%Y-%m-%dT%H:%M:%S")]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, TIMES_HEADER + "".join("\t".join(r) + "\n" for r in self.rows.values()))


def _start(cmd: list[str], cores, log: Path | None) -> subprocess.Popen:
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    if log is None:
        return subprocess.Popen(cmd, preexec_fn=pin, start_new_session=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as fh:
        fh.write(f"# {_quoted(cmd)}\n# cores: {_cores_str(cores)}\n")
        fh.flush()
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=pin, start_new_session=True)


def _outcome(p: subprocess.Popen, log: Path | None, secs: float, cores, backend: BackendJobs | None):
    """(seconds, cores, status, job, what went wrong or None) of a finished part; through a backend, the
    job's own time (its log's frame: without the time it queued) and its cores."""
    if backend is None:
        why = None if p.returncode == 0 else (f"exit status {p.returncode}"
                                              + (f", log {log}: {last_error_line(log)}" if log else ""))
        return secs, cores, "ok" if why is None else f"exit {p.returncode}", None, why
    frame, why = backend.result(p, log)
    status = "ok" if why is None else f"exit {frame.code}" if frame.code is not None else "failed"
    return (frame.seconds if frame.seconds is not None else secs), backend.cores, status, frame.job, why


def run_parts(parts: list[tuple[str, list[str], Path | None]], jobs: int, pins: list, exp_root: Path,
              times: _Times, backend: BackendJobs | None = None) -> list[str]:
    """Run ``(name, command, done marker)`` parts, at most ``jobs`` at once; a part that succeeds gets its
    marker (if any) touched. Here (``backend`` None) slot i is pinned to ``pins[i]``, and with one job a
    part's output goes to this terminal; through a ``backend`` each part is one job of it. Otherwise a
    part's output goes to exp/log/grid.<name>.log. Returns the failed parts' descriptions (exit status,
    log and the log's last error line; the other parts still run to the end). SIGINT/SIGTERM stop every
    running part (a backend's: its job is cancelled)."""
    todo, running, failed = list(parts), {}, []
    free = list(range(jobs))
    with interrupts_raise() as guard:
        try:
            while todo or running:
                while todo and free:
                    with guard.deferred():  # a started part is always in `running`, for the clean-up
                        name, cmd, done = todo.pop(0)
                        slot = free.pop(0)
                        log = None if jobs == 1 and backend is None else exp_root / "log" / f"grid.{name}.log"
                        if backend is None:
                            print(f"grid: {name}: {_quoted(cmd)}" + (f" (cores {_cores_str(pins[slot])}, log {log})"
                                                                      if log else ""), file=sys.stderr)
                            p = _start(cmd, pins[slot], log)
                        else:
                            print(f"grid: {name}: {_shown(cmd, log, backend)}", file=sys.stderr)
                            p = backend.start(log, cmd)
                        running[p] = (name, done, slot, log, time.monotonic())
                for p in [p for p in running if p.poll() is not None]:
                    name, done, slot, log, t0 = running.pop(p)
                    free.append(slot)
                    free.sort()
                    secs, cores, status, job, why = _outcome(p, log, time.monotonic() - t0, pins[slot], backend)
                    times.add(name, cores, secs, status)
                    if why is None:
                        if done is not None:
                            done.parent.mkdir(parents=True, exist_ok=True)
                            done.touch()
                        if log is not None:
                            print(f"grid: {name} finished in {secs:.0f} s" + (f" (slurm job {job})" if job else ""),
                                  file=sys.stderr)
                    else:
                        failed.append(f"{name} ({why})")
                        print(f"grid: {name} FAILED: {why}", file=sys.stderr)
                if running:
                    time.sleep(0.2)
        except BaseException:
            if backend is not None:
                backend.stop(list(running))
            else:
                kill_groups(list(running))
            raise
    return failed


def _recipe_opt(cmd: list[str], name: str) -> str | None:
    """The value the recipe command ``cmd`` (``./asr.sh --opt value ...``) gives option ``name`` (the
    last one wins, as in parse_options.sh), or None."""
    value, i = None, 1
    while i < len(cmd):
        w = cmd[i]
        if w.startswith(name + "="):
            value, i = w.split("=", 1)[1], i + 1
        elif w == name and i + 1 < len(cmd):
            value, i = cmd[i + 1], i + 2
        else:
            i += 2 if w.startswith("--") and "=" not in w else 1
    return value


def _int_opt(cmd: list[str], name: str) -> int | None:
    v = _recipe_opt(cmd, name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ConfigError(f"{name} '{v}': expected a whole number") from None


DEFAULT_NJ = 2  # asr.sh's --nj: the cores of a system's job when neither --cores-per-job nor the recipe's --nj says


def _backend(name: str, base: list[str], config: str, cores_per_job: int) -> tuple[BackendJobs, list[str]]:
    """The backend running each system as one job, and the options its asr.sh gets inside the job. The
    job: cmd.sh's train_cmd for ``cmd_backend=name``, or its cuda_cmd with ``--gpu N`` when the recipe's
    --ngpu (else the config's ngpu) asks for N GPUs, with ``--num-threads C`` (C: --cores-per-job, else
    the recipe's --nj, else 2). Inside it asr.sh runs with ``--cmd-backend local --nj C``: the stages'
    parallel parts (decoding, probing) are processes in the job's allocation, not nested jobs."""
    if (_int_opt(base, "--num-nodes") or 1) > 1:
        raise ConfigError(f"--num-nodes {_int_opt(base, '--num-nodes')}: through the '{name}' backend each system is "
                          "one job on one node; for multi-node training run the grid with --grid-opts "
                          "'--backend local' (each system's stages then submit their own jobs through cmd.sh)")
    cores = cores_per_job or _int_opt(base, "--nj") or DEFAULT_NJ
    if cores < 1:
        raise ConfigError(f"--cores-per-job {cores_per_job}: a job needs at least one core")
    ngpu = _int_opt(base, "--ngpu")
    if ngpu is None:
        ngpu = int((load_yaml(config) if Path(config).exists() else {}).get("ngpu") or 0)
    commands = cmd_sh_commands(name)
    gpu = ["--gpu", str(ngpu)] if ngpu > 0 else []
    backend = BackendJobs(commands["cuda_cmd" if gpu else "train_cmd"], [*gpu, "--num-threads", str(cores)], cores)
    return backend, ["--cmd-backend", "local", "--nj", str(cores)]


@main_guard
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise ConfigError("usage: python -m asr_gr.bin.grid --grid GRID.yaml -- ./asr.sh [corpus options]")
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", required=True)
    ap.add_argument("--exp-root", default="exp")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--backend",
                    help="where the systems run: local (processes here) or a backend of the recipe's cmd.sh "
                         "(slurm): each system (and seed) one job of cmd.sh's train_cmd, or cuda_cmd --gpu N when "
                         "--ngpu or the config's ngpu asks for GPUs, its asr.sh stages 3-6 inside with "
                         "--cmd-backend local; the data preparation runs here first. Default: the recipe "
                         "command's --cmd-backend, else local")
    ap.add_argument("--jobs", type=int,
                    help="systems run at once, each its own asr.sh (after the data preparation, which runs alone); "
                         "output to exp/log/grid.<tag>.log when > 1. Default: 1 here, every system at once "
                         "through a backend. Here give asr.sh --nj = --cores-per-job")
    ap.add_argument("--cores-per-job", type=int, default=0,
                    help="here: pin every part to this many cores of its own (slot i: the i-th block of cores "
                         "this process may use; 0: no pinning). Through a backend: the cores each job asks for "
                         "(--num-threads C) and its asr.sh's --nj (0: the recipe's --nj, else 2)")
    args = ap.parse_args(argv[:cut])
    base = argv[cut + 1:]
    grid = load_yaml(args.grid)
    systems = expand(grid, args.grid)
    config = grid.get("config", "conf/train.yaml")
    backend, inner = None, []
    backend_name = args.backend or _recipe_opt(base, "--cmd-backend") or "local"
    if backend_name != "local":
        backend, inner = _backend(backend_name, base, config, args.cores_per_job)
    untr = grid.get("untranscribed_set", "untranscribed")
    test_set, heldout_set = grid.get("test_set", "test"), grid.get("heldout_set", "train_heldout")
    # the decode dirs summarised, decode_<test_set>_<setup>: one setup or a list; default every setup decoded
    setup = grid.get("decode_setup")
    exp_root = Path(args.exp_root)
    seeds = seeds_of(grid, args.grid)
    prep = ("prep", base + ["--stage", "1", "--stop-stage", "2", "--extra-sets", untr], None)
    train_opts = _recipe_opt(base, "--train-opts")
    parts = []
    for s in systems:
        for seed in seeds:
            done = exp_root / tag_of(s, seed) / ".grid_done"
            if done.exists():
                print(f"grid: {tag_of(s, seed)} is done; skipping", file=sys.stderr)
                continue
            parts.append((tag_of(s, seed), base + ["--stage", "3", "--stop-stage", "6"] +
                          system_args(s, config, untr, seed, train_opts) + inner, done))
    jobs = args.jobs if args.jobs is not None else max(1, len(parts)) if backend else 1
    pins = _pin_sets(jobs, 0 if backend else args.cores_per_job)
    if jobs > 1:  # the longest first (semi-supervised systems also train on the untranscribed set)
        parts.sort(key=lambda p: "--untranscribed-set" not in p[1])
    if args.dry_run:
        print(f"grid: prep: {_quoted(prep[1])}", file=sys.stderr)
        for tag, cmd, _ in parts:
            log = exp_root / "log" / f"grid.{tag}.log"
            print(f"grid: {tag}: {_shown(cmd, log, backend)}", file=sys.stderr)
        return
    times = _Times(exp_root / "grid_times.tsv")
    t0 = time.monotonic()
    # the data preparation here, alone (through a backend: its stage 2 parts are jobs of the recipe's own
    # --cmd-backend); then the systems; every system done: the summary alone
    steps = [([prep], 1, None), (parts, jobs, backend)] if parts else []
    for batch, n, through in steps:
        failed = run_parts(batch, n, pins, exp_root, times, through)
        if failed:
            raise TrainingError(f"grid: {len(failed)} part(s) failed: {'; '.join(failed)}; fix and rerun: "
                                "finished systems are skipped")
    a = time.monotonic()
    print(summarise(systems, exp_root, test_set, heldout_set, seeds, config, setup), end="")
    write_record(exp_root, "asr_gr.bin.grid", argv, args, config=grid)
    times.add("summary", None, time.monotonic() - a, "ok")
    total = sum(float(r[2]) for r in times.rows.values())
    print(f"grid: wall time {time.monotonic() - t0:.0f} s; the parts' times add up to {total:.0f} s "
          f"({exp_root / 'grid_times.tsv'})", file=sys.stderr)


if __name__ == "__main__":
    main()
