"""Every command-line tool reports user errors the same way (asr_gr.bin.common.main_guard)."""

import importlib
import pkgutil

import pytest

import asr_gr.bin
from asr_gr.bin.common import main_guard

TOOLS = sorted(m.name for m in pkgutil.iter_modules(asr_gr.bin.__path__) if m.name != "common")


@pytest.mark.parametrize("name", TOOLS)
def test_every_tool_main_has_the_error_guard(name):
    main = importlib.import_module(f"asr_gr.bin.{name}").main
    # functools.wraps in main_guard leaves the undecorated function as __wrapped__
    assert getattr(main, "__wrapped__", None) is not None and main.__code__ is main_guard(lambda: 0).__code__


def test_guard_turns_a_missing_dir_into_one_line(tmp_path, capsys):
    from asr_gr.bin import results, validate_data_dir

    with pytest.raises(SystemExit) as e:
        validate_data_dir.main([str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "Traceback" not in err
    bad = tmp_path / "exp" / "sys" / "decode_test" / "score"
    bad.mkdir(parents=True)
    (tmp_path / "exp" / "sys" / "config.yaml").write_text("aux: none\n")
    (bad / "result.json").write_text("{not json")
    with pytest.raises(SystemExit):
        results.main(["--exp-root", str(tmp_path / "exp")])
    assert f"ERROR: {bad / 'result.json'}: not JSON" in capsys.readouterr().err
