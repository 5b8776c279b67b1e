import pytest

from asr_gr.config import resolve
from asr_gr.train.trainer import TRAIN_DEFAULTS
from asr_gr.utils import ConfigError


def test_file_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.001\naux: mtl\naux_conf: {spk_layer: 2}\n")
    cfg = resolve(TRAIN_DEFAULTS, p, ["aux_conf.spk_lambda=0.3", (["aux"], "adversarial"), "max_epochs=3"])
    assert cfg["lr"] == 0.001 and cfg["aux"] == "adversarial" and cfg["max_epochs"] == 3
    assert cfg["aux_conf"] == {"spk_layer": 2, "spk_lambda": 0.3}


@pytest.mark.parametrize("text, msg", [
    ("lr: 0.001\nlearning_rate: 3\n", "unknown key 'learning_rate'"),
    ("max_epochs: ten\n", "key 'max_epochs' must be an integer, got 'ten'"),
    ("lr: [1, 2]\n", "key 'lr' must be a number"),
    ("aux_conf: 3\n", "key 'aux_conf' must be a mapping"),
    ("lr: 0.1\n  bad: indent\n", r"c.yaml:2: invalid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
])
def test_bad_configs_name_the_key(tmp_path, text, msg):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg):
        resolve(TRAIN_DEFAULTS, p)


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        resolve(TRAIN_DEFAULTS, p)
