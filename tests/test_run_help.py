"""./run.sh --help and ./asr.sh --help list every option with its default and comment; a positional
argument is an error."""

import re
import subprocess

import pytest

from conftest import ROOT

ASR_SH = ROOT / "egs" / "TEMPLATE" / "asr1" / "asr.sh"


def _declared(script):
    """(name, literal default) of the options a script declares before parse_options.sh, read here
    independently of utils/print_options.sh."""
    out = []
    for line in script.read_text().splitlines():
        if re.match(r"^(\.|source)\s.*parse_options\.sh", line):
            break
        m = re.match(r"""^([a-z_][a-z0-9_]*)=("[^"]*"|[^\s#]*)""", line)
        if m:
            out.append((m.group(1), m.group(2).strip('"')))
    return out


def _run(cwd, *args):
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=60)


def _show(v):
    return '""' if v == "" else f'"{v}"' if " " in v else v


def test_asr_sh_help_lists_every_option_with_default_and_comment():
    p = _run(ROOT / "egs" / "mini_synth" / "asr1", "./asr.sh", "--help")
    assert p.returncode == 0, p.stderr
    declared = _declared(ASR_SH)
    assert len(declared) > 25
    lines = p.stdout.splitlines()
    for name, default in declared:
        opt = f"--{name.replace('_', '-')} (default: {_show(default)})"
        (line,) = [x for x in lines if x.strip().startswith(opt + " ") or x.strip() == opt]
        assert line.split(")", 1)[1].strip(), f"{opt} has no comment"
    assert "first stage to run" in p.stdout and '--aux (default: "none mtl adversarial")' in p.stdout


@pytest.mark.parametrize("recipe, own", [
    ("mini_synth", ["--corpus-opts", "--grid"]),
    ("an4", ["--an4-root"]),
    ("librispeech", ["--librispeech-root", "--parts"]),
])
def test_run_sh_help_shows_its_own_options_and_asr_sh_options_as_the_recipe_sets_them(recipe, own):
    p = _run(ROOT / "egs" / recipe / "asr1", "./run.sh", "--help")
    assert p.returncode == 0, p.stderr
    head, _, rest = p.stdout.partition("Options of asr.sh")
    for o in own:
        assert re.search(rf"^  {o} \(default: .*\)\s+\S", head, re.M), o
    assert "--help" not in re.findall(r"^  (--\S+)", head, re.M)
    for name, _ in _declared(ASR_SH):
        assert f"--{name.replace('_', '-')} (default: " in rest, name
    test_sets = {"mini_synth": '"dev test"', "an4": '"dev test"',
                 "librispeech": '"dev_clean dev_other test_clean test_other"'}[recipe]
    assert f"--test-sets (default: {test_sets})" in rest


def test_run_sh_help_values_follow_earlier_options():
    p = _run(ROOT / "egs" / "mini_synth" / "asr1", "./run.sh", "--stop-stage", "7", "--help")
    assert p.returncode == 0 and "--stop-stage (default: 7)" in p.stdout


@pytest.mark.parametrize("args", [["foo"], ["--stage", "2", "foo"]])
def test_a_positional_argument_is_an_error(args):
    p = _run(ROOT / "egs" / "mini_synth" / "asr1", "./asr.sh", *args)
    assert p.returncode == 1
    assert "unexpected argument 'foo'" in p.stderr and "--help" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
