// JPEG decoding over libjpeg-turbo's libjpeg API, with the settings PIL uses (ISLOW DCT,
// fancy upsampling, block smoothing: libjpeg's defaults). Nothing here prints, exits or
// keeps a pointer after returning; errors come back as a status and a message.
#ifndef SYNTH_TURBOJPEG_DECODE_H
#define SYNTH_TURBOJPEG_DECODE_H

#include <stddef.h>

enum {
	SYNTH_JPEG_OK = 0,
	SYNTH_JPEG_ERROR = 1,     // libjpeg error; msg holds its text
	SYNTH_JPEG_TRUNCATED = 2, // data ended before the image did
	SYNTH_JPEG_UNSUPPORTED = 3,
	SYNTH_JPEG_BUFFER = 4, // out too small for the header's size
};

typedef struct {
	int width, height;
	int components;     // in the file: 1, 3 or 4
	int out_components; // what synth_jpeg_decode writes: 1 (grey), 4 (RGBA or CMYK)
	int color_space;    // libjpeg J_COLOR_SPACE of the file
	int progressive;
	int adobe;          // an Adobe APP14 marker was seen
} synth_jpeg_info;

// synth_jpeg_header reads the header of data[0:len] into info.
int synth_jpeg_header(const unsigned char *data, size_t len, synth_jpeg_info *info, char *msg, int msglen);

// synth_jpeg_decode decodes data into out (info->height rows of width*out_components
// bytes): grey as is, 3-component images as RGBA with alpha 255, 4-component (CMYK, YCCK)
// as CMYK the way libjpeg returns it (Adobe files store it inverted). max_memory bounds
// libjpeg's working memory (progressive coefficient buffers), 0 for libjpeg's default.
int synth_jpeg_decode(const unsigned char *data, size_t len, unsigned char *out, size_t out_len,
	long max_memory, synth_jpeg_info *info, char *msg, int msglen);

#endif
