"""Image decoding and cropping: open, orient, convert, crop, resize.

This package imports only NumPy, Pillow and the package's lower modules
(`augment`, `boxes`, `storage`, `errors`, `options`), never Keras, a backend,
the index or the dataset, so worker processes start fast and decoding is
byte-identical on every backend.

What happens to one image, in order:

1. Open lazily (header only) and check the pixel count against
   `max_image_pixels` (the decompression-bomb guard; configurable per dataset
   without touching Pillow's global setting).
2. Fast path (`fast=True`, JPEG only): when a region, and the smallest region
   of its image in the dataset, are at least twice as large as `image_size`,
   ask libjpeg to decode at 1/2, 1/4 or 1/8 scale (`Image.draft`, DCT-domain
   downscaling; for a mirrored or rotated image only by a factor that divides
   both sides). The image's smallest region sets the scale of all its rows, so
   a batch decodes each image once, and a crop never depends on its batch.
   Crops then differ from the reference path by resampling noise only (tests
   bound it). Where it is exact, only the strip of the JPEG the rows need is
   decoded (the optional libjpeg-turbo region decoder).
3. Apply the EXIF orientation, so boxes refer to the image as displayed, which
   is how VGG Image Annotator shows it.
4. Convert the mode: palette, CMYK, 1-bit, 16-bit and float images become
   8-bit; for `color_mode` `"rgb"` and `"grayscale"` any transparency is
   composited over black (keep it with `"rgba"`).
5. Crop and resize each region in one resampling step
   (`Image.resize(box=...)`, sub-pixel exact, antialiased like Pillow's
   filters), from the window `row_window_of` decides.

Pixels stay `uint8` here; the dataset casts once at the end.

Modules: `jobs` (a batch's work and result, as plain data), `image` (steps 1,
3 and 4), `scale` (the DCT scale of step 2), `native` (the region decoder of
step 2), `crop` (a row's window, and step 5), `batch` (`decode_batch`: all of
it for one batch, each image opened once).
"""

from keras_roi_datagen.decode.batch import decode_batch
from keras_roi_datagen.decode.crop import (
    Cut,
    RowWindow,
    clip_to_image,
    crop_region,
    row_window_of,
    sample_window,
)
from keras_roi_datagen.decode.image import ImageProblem, load_image, read_image_header, read_image_size
from keras_roi_datagen.decode.jobs import (
    PIXEL_ALIGNMENT,
    BatchJob,
    BatchResult,
    DecodeOptions,
    RowFailure,
    new_pixels,
)

__all__ = [
    "PIXEL_ALIGNMENT",
    "BatchJob",
    "BatchResult",
    "Cut",
    "DecodeOptions",
    "ImageProblem",
    "RowFailure",
    "RowWindow",
    "crop_region",
    "decode_batch",
    "clip_to_image",
    "load_image",
    "new_pixels",
    "read_image_header",
    "read_image_size",
    "row_window_of",
    "sample_window",
]
