"""asr_gr: CTC speech recognition recipes for studying what acoustic models learn about speakers."""

__version__ = "0.1.0"
