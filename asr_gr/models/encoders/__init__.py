"""Acoustic encoders; importing this package registers every encoder in ENCODERS."""

from asr_gr.models.encoders import blstm, conformer, conv_glu  # noqa: F401
