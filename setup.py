"""Packaging for hear-mn."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="hear-mn",
    version="0.1.0",
    description="Low-complexity audio embedding extractors (EfficientAT MobileNets, Audio-MLP) behind the HEAR API",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license_expression="MIT",
    license_files=["LICENSE"],
    packages=find_packages(include=["hear_mn", "hear_mn.*"]),
    # The Audio-MLP checkpoints (CC BY-SA 4.0) with their licence and attribution, and
    # AudioSet's class list (CC BY 4.0) with its attribution.
    package_data={
        "hear_mn": [
            "checkpoints/*.pth",
            "checkpoints/*.txt",
            "checkpoints/*.md",
            "audioset/*.csv",
            "audioset/*.md",
        ]
    },
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "numpy",
        "soundfile>=0.12",
        "soxr>=0.3",
        "tqdm>=4.42",
        "av>=10",
    ],
    entry_points={"console_scripts": ["hear-mn=hear_mn.cli:main"]},
    extras_require={
        # ONNX export (hear_mn.export, `hear-mn export`) and running the exported files.
        "onnx": ["onnxruntime>=1.17", "onnx>=1.15"],
        # Bulk embedding on Ray Data (`hear-mn embed --engine ray`, hear_mn.embed_dataset).
        "ray": ["ray[data]>=2.60"],
        "test": [
            "pytest>=7",
            "ruff",
            "build",  # tests/integration/test_packaging.py builds the sdist and wheel
            "setuptools>=77",  # license_expression (PEP 639); the wheel tests build with it
            "onnxruntime>=1.17",
            "onnx>=1.15",
            "ray[data]>=2.60",
            "mkdocs-material>=9.5",  # the documentation site (mkdocs.yml; tests/integration/test_docs_site.py)
            # espeak-ng's library and data as a wheel: tests/support/render_speech.py renders spoken
            # words for the classifier tests without a system espeak-ng
            "espeakng-loader>=0.2",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Analysis",
    ],
)
