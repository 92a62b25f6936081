/*
 * Region decode of baseline JPEGs with libjpeg-turbo (optional fast path).
 *
 * decode_region(data, x0, y0, x1, y1, scale_denom, gray) decodes only the
 * rows and (iMCU-aligned) columns a region needs, at 1/scale_denom size,
 * using libjpeg-turbo's jpeg_crop_scanline and jpeg_skip_scanlines. It
 * returns (pixels, width, height, channels, left, top, scaled_width,
 * scaled_height): `pixels` holds rows [top, top + height) and columns
 * [left, left + width) of the image decoded at 1/scale_denom, as RGBX
 * (4 bytes a pixel, the layout of Pillow's own RGB images, so Python wraps
 * them without a copy) or, with `gray`, one byte a pixel.
 *
 * Anything unusual (not YCbCr/grayscale/RGB, any libjpeg warning such as
 * corrupt or truncated data) raises ValueError; the Python side then uses
 * the Pillow reference path, which reports real errors with their kind.
 * The GIL is released while decoding.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <setjmp.h>
#include <string.h>
#include <jpeglib.h>

struct guarded_error {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    int warnings;
    char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
    struct guarded_error *err = (struct guarded_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    struct guarded_error *err = (struct guarded_error *)cinfo->err;
    if (level < 0) {  /* a warning: corrupt data, premature end of file, ... */
        err->warnings += 1;
        (*cinfo->err->format_message)(cinfo, err->message);
    }
}

static PyObject *decode_region(PyObject *self, PyObject *args) {
    Py_buffer data;
    int x0, y0, x1, y1, denom, gray;
    if (!PyArg_ParseTuple(args, "y*iiiiip", &data, &x0, &y0, &x1, &y1, &denom, &gray)) {
        return NULL;
    }
    struct jpeg_decompress_struct cinfo;
    struct guarded_error err;
    memset(&cinfo, 0, sizeof(cinfo));
    memset(&err, 0, sizeof(err));
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = on_error;
    err.base.emit_message = on_message;
    /* volatile: both change between setjmp and a longjmp back to it. */
    PyObject *volatile pixels = NULL;  /* decoded into in place: no copy */
    const char *volatile refusal = NULL;
    JDIMENSION left = 0, width = 0, top = 0, height = 0, full_w = 0, full_h = 0;
    int channels = gray ? 1 : 4;

    Py_BEGIN_ALLOW_THREADS
    if (setjmp(err.jump)) {
        refusal = err.message;
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (const unsigned char *)data.buf, (unsigned long)data.len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space != JCS_YCbCr && cinfo.jpeg_color_space != JCS_GRAYSCALE &&
        cinfo.jpeg_color_space != JCS_RGB) {
        refusal = "unsupported JPEG colour space";
        goto done;
    }
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)denom;
    cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_EXT_RGBX;
    jpeg_start_decompress(&cinfo);
    full_w = cinfo.output_width;
    full_h = cinfo.output_height;
    JDIMENSION sx0 = (JDIMENSION)(x0 / denom), sy0 = (JDIMENSION)(y0 / denom);
    JDIMENSION sx1 = (JDIMENSION)((x1 + denom - 1) / denom);
    JDIMENSION sy1 = (JDIMENSION)((y1 + denom - 1) / denom);
    if (sx1 > full_w) sx1 = full_w;
    if (sy1 > full_h) sy1 = full_h;
    if (sx0 >= sx1 || sy0 >= sy1) {
        refusal = "empty region";
        goto done;
    }
    left = sx0;
    width = sx1 - sx0;
    jpeg_crop_scanline(&cinfo, &left, &width);  /* aligns left down to an iMCU */
    top = sy0;
    height = sy1 - sy0;
    if (top > 0 && jpeg_skip_scanlines(&cinfo, top) != top) {
        refusal = "could not skip to the region";
        goto done;
    }
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    if (cinfo.output_components != channels) {
        refusal = "unexpected number of components";
        goto done;
    }
    Py_BLOCK_THREADS
    pixels = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(stride * height));
    Py_UNBLOCK_THREADS
    if (pixels == NULL) {
        refusal = "out of memory";
        goto done;
    }
    unsigned char *buffer = (unsigned char *)PyBytes_AS_STRING(pixels);
    while (cinfo.output_scanline < top + height) {
        JSAMPROW row = buffer + stride * (cinfo.output_scanline - top);
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
            refusal = "premature end of data";
            goto done;
        }
    }
    width = cinfo.output_width;
    if (err.warnings) {
        refusal = err.message;
    }
done:
    jpeg_destroy_decompress(&cinfo);
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&data);
    if (refusal != NULL) {
        Py_XDECREF(pixels);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, refusal);
        }
        return NULL;
    }
    return Py_BuildValue("(NIIiIIII)", pixels, width, height, channels, left, top, full_w, full_h);
}

static PyMethodDef methods[] = {
    {"decode_region", decode_region, METH_VARARGS,
     "decode_region(data, x0, y0, x1, y1, scale_denom, gray) -> (pixels, width, height, "
     "channels, left, top, scaled_width, scaled_height)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jpeg_region",
    "Region decode of baseline JPEGs with libjpeg-turbo.", -1, methods,
};

PyMODINIT_FUNC PyInit__jpeg_region(void) {
    return PyModule_Create(&module);
}
