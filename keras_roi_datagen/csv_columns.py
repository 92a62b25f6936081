"""Moved to `keras_roi_datagen.formats.csv_columns`; this name keeps working for a release.

Importing it gives that module itself (so attributes set through the old
name, e.g. by `monkeypatch`, are the module's own) and warns.
"""

import importlib
import sys
import warnings

warnings.warn("`keras_roi_datagen.csv_columns` is deprecated; "
              "import `keras_roi_datagen.formats.csv_columns`.", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("keras_roi_datagen.formats.csv_columns")
