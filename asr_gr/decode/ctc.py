"""CTC decoding: greedy search lives with the trained-system code (training validates with it too)."""

from asr_gr.inference import greedy_decode

__all__ = ["greedy_decode"]
