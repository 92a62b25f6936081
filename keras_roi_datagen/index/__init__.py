"""The index: an annotation table turned into NumPy arrays, checked once.

`build_index` reads a table (any format, a plain CSV or columnar file, a
DataFrame), resolves and checks every image path, turns every region into a
box and every label into a class index, and records each problem with its
row. What comes out is an `IndexBuild` holding a `RoiIndex`: a few arrays (a
million rows cost tens of megabytes and cross process pipes cheaply), never
per-row Python objects.

Modules, one concept each:

- `model`: `TableSpec`, `RoiIndex`, `IndexBuild`, and `resolve_table`, the one
  resolver of the table options users give;
- `checks`: every row rule and its message (both builders use it), the row
  hash, the duplicate check, the fingerprint;
- `rows` and `columns`: the two builders (row by row; by columns with pyarrow);
- `cache`: the on-disk entry (memory-mapped columns);
- `build`: `build_index`, the one routing table from a kind of source to a
  builder, writing into memory or a cache entry.
"""

from keras_roi_datagen.index.build import build_index
from keras_roi_datagen.index.model import IndexBuild, RoiIndex, TableSpec, resolve_table

__all__ = ["IndexBuild", "RoiIndex", "TableSpec", "build_index", "resolve_table"]
