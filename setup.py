"""Builds the optional libjpeg-turbo region decoder; everything else is in pyproject.toml.

The extension is optional: without a C compiler or libjpeg headers the package
installs without it and decodes with Pillow (the reference path).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "keras_roi_datagen._jpeg_region",
            ["keras_roi_datagen/_jpeg_region.c"],
            libraries=["jpeg"],
            optional=True,
        )
    ]
)
