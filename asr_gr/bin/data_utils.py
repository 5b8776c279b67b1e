"""Kaldi's data-dir utilities, run by the scripts of utils/ with Kaldi's names and arguments:

    python -m asr_gr.bin.data_utils combine [--extra-files "f1 f2"] [--skip-fix true] DEST SRC1 SRC2 ...
    python -m asr_gr.bin.data_utils copy [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S]
                                         [--validate-opts "..."] SRC DEST
    python -m asr_gr.bin.data_utils utt2dur [--nj N] [--cmd CMD] [--read-entire-file true] [--frame-shift S] DIR
    python -m asr_gr.bin.data_utils perturb-speed [--utt-extra-files "f1 f2"] FACTOR SRC DEST
    python -m asr_gr.bin.data_utils speed FACTOR INPUT > out.wav    # INPUT: a file, an ark entry or -

Options are parsed as Kaldi's parse_options.sh parses them: before the arguments, ``--name value`` or
``--name=value``, ``-`` and ``_`` alike in the name, ``true``/``false`` for booleans. ``speed`` is what
the wav.scp entries of a perturbed data dir run (see asr_gr.data.kaldi_utils).
"""

from __future__ import annotations

import sys

from asr_gr.bin.common import main_guard

USAGE = {
    "combine": ("utils/combine_data.sh [--extra-files 'file1 file2'] [--skip-fix true|false] "
                "<dest-data-dir> <src-data-dir1> <src-data-dir2> ...\n"
                "Note, files that don't appear in all source dirs will not be combined, with the exception "
                "of utt2uniq and segments, which are created where necessary."),
    "copy": ("utils/copy_data_dir.sh [options] <srcdir> <destdir>\n"
             "e.g.: utils/copy_data_dir.sh --spk-prefix=1- --utt-prefix=1- data/train data/train_1\n"
             "Options: --utt-prefix P, --utt-suffix S, --spk-prefix P, --spk-suffix S (default empty), "
             "--validate-opts '...' (options of utils/validate_data_dir.sh)"),
    "utt2dur": ("utils/data/get_utt2dur.sh [options] <datadir>\n"
                "e.g.: utils/data/get_utt2dur.sh data/train\n"
                "Options: --nj N (parallel reads, default 4), --cmd CMD (accepted; the reads run here), "
                "--read-entire-file true|false (default false), --frame-shift SECONDS (default 0.01; "
                "used only with feats.scp and no DIR/frame_shift)"),
    "perturb-speed": ("utils/perturb_data_dir_speed.sh [--utt-extra-files 'f1 f2'] <warping-factor> "
                      "<srcdir> <destdir>\n"
                      "Applies a speed perturbation to the data directory, by creating a modified wav.scp "
                      "and other files.\ne.g.: utils/perturb_data_dir_speed.sh 0.9 data/train data/train_sp0.9"),
    "speed": ("python -m asr_gr.bin.data_utils speed <factor> <input> > out.wav\n"
              "Writes to standard output a WAV of <input> (a file, an ark entry or - for standard input) "
              "played <factor> times as fast."),
}

DEFAULTS = {
    "combine": {"extra_files": "", "skip_fix": False},
    "copy": {"utt_prefix": "", "utt_suffix": "", "spk_prefix": "", "spk_suffix": "", "validate_opts": ""},
    "utt2dur": {"nj": 4, "cmd": "run.pl", "read_entire_file": False, "frame_shift": 0.01},
    "perturb-speed": {"utt_extra_files": ""},
    "speed": {},
}

NARGS = {"combine": (2, None), "copy": (2, 2), "utt2dur": (1, 1), "perturb-speed": (3, 3), "speed": (2, 2)}


class UsageError(Exception):
    pass


def parse_kaldi_args(argv: list[str], defaults: dict) -> tuple[dict, list[str]]:
    """Options first (``--name value`` / ``--name=value``), then the positional arguments."""
    opts = dict(defaults)
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        word = argv[i]
        if word in ("--help", "--"):
            if word == "--help":
                raise UsageError("")
            i += 1
            break
        if "=" in word:
            name, value = word[2:].split("=", 1)
            i += 1
        else:
            name = word[2:]
            if i + 1 >= len(argv):
                raise UsageError(f"option '{word}' needs a value")
            value = argv[i + 1]
            i += 2
        key = name.replace("-", "_")
        if key not in opts:
            raise UsageError(f"unknown option '--{name}'")
        default = defaults[key]
        if isinstance(default, bool):
            if value not in ("true", "false"):
                raise UsageError(f"option '--{name}' takes true or false, got '{value}'")
            opts[key] = value == "true"
        elif isinstance(default, int):
            try:
                opts[key] = int(value)
            except ValueError:
                raise UsageError(f"option '--{name}' takes a whole number, got '{value}'") from None
        elif isinstance(default, float):
            try:
                opts[key] = float(value)
            except ValueError:
                raise UsageError(f"option '--{name}' takes a number, got '{value}'") from None
        else:
            opts[key] = value
    return opts, argv[i:]


def _info(msg: str) -> None:
    print(msg, flush=True)


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _report_validation(data_dir: str, errors: list[str]) -> None:
    """What utils/validate_data_dir.sh prints at the end of Kaldi's copy/perturb scripts."""
    for e in errors:
        print(f"ERROR: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"validate_data_dir: {data_dir}: OK")


@main_guard
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in USAGE:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    cmd, rest = argv[0], argv[1:]
    try:
        opts, args = parse_kaldi_args(rest, DEFAULTS[cmd])
        lo, hi = NARGS[cmd]
        if len(args) < lo or (hi is not None and len(args) > hi):
            raise UsageError(f"expected {lo}{'' if hi == lo else ' or more' if hi is None else f'-{hi}'} "
                             f"argument(s), got {len(args)}")
    except UsageError as e:
        if str(e):
            print(f"ERROR: {e}", file=sys.stderr)
        print(f"Usage: {USAGE[cmd]}", file=sys.stderr)
        sys.exit(0 if not str(e) else 1)

    if cmd == "speed":
        from asr_gr.data.kaldi_utils import speed_wav

        try:
            speed_wav(args[0], args[1], sys.stdout.buffer)
        except BrokenPipeError:  # the reader stopped early, as with sox
            sys.exit(1)
        return

    from asr_gr.data import kaldi_utils as ku

    if cmd == "combine":
        ku.combine_data(args[0], args[1:], extra_files=opts["extra_files"].split(), skip_fix=opts["skip_fix"],
                        log=_info, warn=_warn)
    elif cmd == "copy":
        errors = ku.copy_data_dir(args[0], args[1], utt_prefix=opts["utt_prefix"], utt_suffix=opts["utt_suffix"],
                                  spk_prefix=opts["spk_prefix"], spk_suffix=opts["spk_suffix"],
                                  validate_opts=opts["validate_opts"], log=_info, warn=_warn)
        _report_validation(args[1], errors)
    elif cmd == "utt2dur":
        if opts["nj"] < 1:
            print(f"ERROR: --nj must be at least 1, got {opts['nj']}", file=sys.stderr)
            sys.exit(1)
        ku.get_utt2dur(args[0], nj=opts["nj"], read_entire_file=opts["read_entire_file"],
                       frame_shift=opts["frame_shift"], log=_info)
    elif cmd == "perturb-speed":
        errors = ku.perturb_data_dir_speed(args[0], args[1], args[2], utt_extra_files=opts["utt_extra_files"].split(),
                                           log=_info, warn=_warn)
        _report_validation(args[2], errors)


if __name__ == "__main__":
    main()
