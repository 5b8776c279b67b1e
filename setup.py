from setuptools import find_packages, setup

setup(
    name="asr_gr",
    version="0.1.0",
    description="CTC speech recognition recipes for studying speaker information: baseline, "
                "multi-task and adversarial (gradient reversal) speaker heads, and probing.",
    packages=find_packages(include=["asr_gr", "asr_gr.*"]),
    python_requires=">=3.11",
    install_requires=[
        "torch", "torchaudio", "kaldiio", "sentencepiece", "pyyaml", "jiwer", "soundfile", "tqdm",
        "numpy", "espeakng-loader", "matplotlib",
    ],
    extras_require={"test": ["pytest"]},
)
