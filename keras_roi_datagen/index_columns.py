"""Moved to `keras_roi_datagen.index.columns`; this name keeps working for a release.

Importing it gives that module itself (so attributes set through the old
name, e.g. by `monkeypatch`, are the module's own) and warns.
"""

import importlib
import sys
import warnings

warnings.warn("`keras_roi_datagen.index_columns` is deprecated; "
              "import `keras_roi_datagen.index.columns`.", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("keras_roi_datagen.index.columns")
