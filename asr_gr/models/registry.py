"""Registries of model parts by name: encoders and auxiliary (speaker) heads.

A new encoder or head is one class with a decorator::

    @ENCODERS.register("my_encoder")
    class MyEncoder(Encoder): ...

and is then selectable from a config (``encoder: my_encoder``) with nothing else to edit.
"""

from __future__ import annotations

from asr_gr.utils import ConfigError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str):
        def deco(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._classes[name] = cls
            cls.registry_name = name
            return cls
        return deco

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type:
        if name not in self._classes:
            raise ConfigError(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}")
        return self._classes[name]

    def build(self, name: str, **kwargs):
        cls = self.get(name)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{self.kind} '{name}': {e}") from None


ENCODERS = Registry("encoder")
AUX_HEADS = Registry("aux")
