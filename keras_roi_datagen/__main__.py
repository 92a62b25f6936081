"""`python -m keras_roi_datagen`: the `keras-roi-datagen` command line (see `cli`)."""

from keras_roi_datagen.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
