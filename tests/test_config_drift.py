"""config.yaml holds every value the model was built with; a rerun with another config is refused."""

import logging
import subprocess
import sys

import pytest
import yaml

from asr_gr.config import resolve
from asr_gr.models.asr_model import build_model, class_defaults, complete_model_conf
from asr_gr.models.encoders.conv_glu import ConvGLUEncoder
from asr_gr.models.speaker import AdversarialSpeakerHead
from asr_gr.inference import load_trained
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
from asr_gr.utils import ConfigError
from tiny_data import TINY_CONFIG, make_setup


def _paths(data):
    return {"train_dir": data / "train", "valid_dir": data / "dev", "heldout_dir": data / "train",
            "token_list": data / "tokens.txt", "cmvn_path": data / "cmvn.ark"}


def _trainer(tmp_path, exp="exp", **over):
    data = tmp_path / "data"
    if not data.exists():
        make_setup(data)
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, **over}.items()])
    t = Trainer(cfg, tmp_path / exp, progress=False, **_paths(data))
    t.write_setup()
    return t


def _saved(tmp_path, exp="exp"):
    return yaml.safe_load((tmp_path / exp / "config.yaml").read_text())


def test_config_yaml_holds_every_constructor_value(tmp_path):
    _trainer(tmp_path, max_epochs=1).run()
    cfg = _saved(tmp_path)
    assert set(cfg["encoder_conf"]) == {"channels", "kernels", "stride", "dropout", "layer_norm", "residual"}
    assert cfg["encoder_conf"]["channels"] == [16, 16] and cfg["encoder_conf"]["layer_norm"] is False
    assert set(cfg["aux_conf"]) == set(class_defaults(AdversarialSpeakerHead))
    assert cfg["aux_conf"]["spk_layer"] == 1 and cfg["aux_conf"]["spk_lambda"] == 1.0
    assert set(TRAIN_DEFAULTS) <= set(cfg)


def test_a_changed_class_default_does_not_change_a_trained_model(tmp_path, monkeypatch):
    _trainer(tmp_path, max_epochs=1).run()
    # A later version of the code turns layer_norm on by default: the trained model still loads as
    # it was built (its config.yaml says layer_norm: false).
    defaults = list(ConvGLUEncoder.__init__.__defaults__)
    defaults[-2] = True  # (channels, kernels, stride, dropout, layer_norm, residual)
    monkeypatch.setattr(ConvGLUEncoder.__init__, "__defaults__", tuple(defaults))
    system = load_trained(tmp_path / "exp", "best.pt")
    model, cfg = system.model, system.config
    assert model.encoder.blocks[0].norm is None and cfg["encoder_conf"]["layer_norm"] is False


def test_an_old_config_without_defaults_still_loads_with_a_note(tmp_path, caplog):
    _trainer(tmp_path, max_epochs=1).run()
    cfg = _saved(tmp_path)
    for k in ("layer_norm", "residual"):
        del cfg["encoder_conf"][k]
    del cfg["aux_conf"]["pooling"]
    (tmp_path / "exp" / "config.yaml").write_text(yaml.safe_dump(cfg))
    with caplog.at_level(logging.INFO):
        full = load_trained(tmp_path / "exp", "best.pt").config
    assert full["encoder_conf"]["residual"] is False and full["aux_conf"]["pooling"] == "mean"
    assert "encoder_conf.layer_norm=False" in caplog.text and "aux_conf.pooling=mean" in caplog.text
    # ... and training resumes in it (the missing values compare as the class defaults).
    t = _trainer(tmp_path, max_epochs=2)
    t.run()
    assert t.epoch == 2


def test_rerun_with_another_config_names_the_differing_keys(tmp_path):
    _trainer(tmp_path, max_epochs=1).run()
    before = (tmp_path / "exp" / "config.yaml").read_text()
    with pytest.raises(ConfigError) as e:
        _trainer(tmp_path, lr=0.001, encoder_conf={**TINY_CONFIG["encoder_conf"], "dropout": 0.3})
    msg = str(e.value)
    assert "\n" not in msg and "config.yaml: this exp dir was trained with another config" in msg
    assert "lr: 0.003 -> 0.001" in msg and "encoder_conf.dropout: 0.1 -> 0.3" in msg
    assert "--force-restart" in msg and "max_epochs" not in msg
    assert (tmp_path / "exp" / "config.yaml").read_text() == before  # nothing overwritten
    # A class default is a value too: naming it explicitly with the same value is no change.
    _trainer(tmp_path, max_epochs=1, encoder_conf={**TINY_CONFIG["encoder_conf"], "layer_norm": False})


def test_a_changed_data_setup_is_refused_before_load_state_dict(tmp_path):
    _trainer(tmp_path, max_epochs=1).run()
    make_setup(tmp_path / "data2")
    (tmp_path / "data2" / "tokens.txt").write_text((tmp_path / "data2" / "tokens.txt").read_text() + "Z\n")
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, "max_epochs": 1}.items()])
    t = Trainer(cfg, tmp_path / "exp", progress=False, **_paths(tmp_path / "data2"))
    with pytest.raises(ConfigError, match=r"token_list: .* -> .*data2/tokens.txt.*vocab_size: \d+ -> \d+"):
        t.run()  # resume() checks too, for callers that never write_setup


def test_resumable_keys_may_change(tmp_path):
    _trainer(tmp_path, max_epochs=1).run()
    t = _trainer(tmp_path, max_epochs=2, num_threads=2, log_every_steps=1, nbest_average=2)
    t.run()
    assert t.epoch == 2 and (tmp_path / "exp" / "avg2.pt").exists()
    assert _saved(tmp_path)["max_epochs"] == 2


def test_force_restart_moves_the_old_exp_dir_aside(tmp_path):
    data = make_setup(tmp_path / "data")
    cmd = [sys.executable, "-m", "asr_gr.bin.train", "--exp-dir", str(tmp_path / "exp"), "--no-progress",
           "--train-dir", str(data["train_dir"]), "--valid-dir", str(data["valid_dir"]),
           "--token-list", str(data["token_list"]), "--cmvn", str(data["cmvn_path"]),
           "--set", "encoder_conf={channels: [8], kernels: [3], stride: 2}", "--set", "batch_frames=600",
           "--set", "max_epochs=1", "--set", "num_threads=1"]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    p = subprocess.run(cmd + ["--set", "lr=0.01"], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1].startswith("ERROR: ") and "lr: 0.003 -> 0.01" in p.stderr
    p = subprocess.run(cmd + ["--set", "lr=0.01", "--force-restart"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    (old,) = (tmp_path / ".replaced").iterdir()
    assert old.name.startswith("exp.") and yaml.safe_load((old / "config.yaml").read_text())["lr"] == 0.003
    assert (old / "checkpoint.pt").exists() and not (old / ".lock").exists()
    assert _saved(tmp_path)["lr"] == 0.01
    assert "resumed from" not in (tmp_path / "exp" / "train.log").read_text()


def test_complete_model_conf_leaves_unknown_keys_for_build_model_to_reject():
    cfg, filled = complete_model_conf({"encoder": "blstm", "encoder_conf": {"hiden": 3}, "aux": "none"})
    assert "encoder_conf.hidden" in filled and cfg["encoder_conf"]["hiden"] == 3
    with pytest.raises(ConfigError, match="hiden"):
        build_model(cfg, 13, 10, 3)
