#include "decode.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

// The error manager: longjmp back instead of exit(), keep the message instead of
// printing it, ignore warnings (PIL does; a truncated file is caught by the source).
typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char *msg;
	int msglen;
} error_mgr;

static void on_error(j_common_ptr cinfo) {
	error_mgr *e = (error_mgr *)cinfo->err;
	if (e->msg && e->msglen > 0) {
		char buf[JMSG_LENGTH_MAX];
		(*cinfo->err->format_message)(cinfo, buf);
		snprintf(e->msg, (size_t)e->msglen, "%s", buf);
	}
	longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
	(void)cinfo;
	(void)level;
}

static void on_output(j_common_ptr cinfo) { (void)cinfo; }

// The source manager reads one memory buffer; asking for more means the file ended early.
// Like libjpeg's own memory source it then feeds an EOI marker so that decoding stops
// cleanly, and we report the truncation.
typedef struct {
	struct jpeg_source_mgr pub;
	int truncated;
} source_mgr;

static const JOCTET eoi[2] = {0xFF, JPEG_EOI};

static void src_init(j_decompress_ptr cinfo) { (void)cinfo; }

static boolean src_fill(j_decompress_ptr cinfo) {
	source_mgr *s = (source_mgr *)cinfo->src;
	s->truncated = 1;
	s->pub.next_input_byte = eoi;
	s->pub.bytes_in_buffer = 2;
	return TRUE;
}

static void src_skip(j_decompress_ptr cinfo, long n) {
	source_mgr *s = (source_mgr *)cinfo->src;
	if (n <= 0) return;
	while ((size_t)n > s->pub.bytes_in_buffer) {
		n -= (long)s->pub.bytes_in_buffer;
		src_fill(cinfo);
	}
	s->pub.next_input_byte += n;
	s->pub.bytes_in_buffer -= (size_t)n;
}

static void src_term(j_decompress_ptr cinfo) { (void)cinfo; }

static void setup(j_decompress_ptr cinfo, error_mgr *err, source_mgr *src,
		const unsigned char *data, size_t len, char *msg, int msglen) {
	cinfo->err = jpeg_std_error(&err->pub);
	err->pub.error_exit = on_error;
	err->pub.emit_message = on_message;
	err->pub.output_message = on_output;
	err->msg = msg;
	err->msglen = msglen;
	jpeg_create_decompress(cinfo);
	memset(src, 0, sizeof *src);
	src->pub.init_source = src_init;
	src->pub.fill_input_buffer = src_fill;
	src->pub.skip_input_data = src_skip;
	src->pub.resync_to_restart = jpeg_resync_to_restart;
	src->pub.term_source = src_term;
	src->pub.next_input_byte = data;
	src->pub.bytes_in_buffer = len;
	cinfo->src = &src->pub;
}

static int read_info(j_decompress_ptr cinfo, synth_jpeg_info *info) {
	info->width = (int)cinfo->image_width;
	info->height = (int)cinfo->image_height;
	info->components = cinfo->num_components;
	info->color_space = (int)cinfo->jpeg_color_space;
	info->progressive = cinfo->progressive_mode ? 1 : 0;
	info->adobe = cinfo->saw_Adobe_marker ? 1 : 0;
	switch (cinfo->num_components) {
	case 1:
		cinfo->out_color_space = JCS_GRAYSCALE;
		info->out_components = 1;
		return SYNTH_JPEG_OK;
	case 3:
		cinfo->out_color_space = JCS_EXT_RGBA;
		info->out_components = 4;
		return SYNTH_JPEG_OK;
	case 4:
		cinfo->out_color_space = JCS_CMYK;
		info->out_components = 4;
		return SYNTH_JPEG_OK;
	}
	return SYNTH_JPEG_UNSUPPORTED;
}

int synth_jpeg_header(const unsigned char *data, size_t len, synth_jpeg_info *info, char *msg, int msglen) {
	struct jpeg_decompress_struct cinfo;
	error_mgr err;
	source_mgr src;
	setup(&cinfo, &err, &src, data, len, msg, msglen);
	if (setjmp(err.jump)) {
		int truncated = src.truncated;
		jpeg_destroy_decompress(&cinfo);
		return truncated ? SYNTH_JPEG_TRUNCATED : SYNTH_JPEG_ERROR;
	}
	jpeg_read_header(&cinfo, TRUE);
	int status = read_info(&cinfo, info);
	if (status == SYNTH_JPEG_OK && src.truncated) status = SYNTH_JPEG_TRUNCATED;
	jpeg_destroy_decompress(&cinfo);
	return status;
}

int synth_jpeg_decode(const unsigned char *data, size_t len, unsigned char *out, size_t out_len,
		long max_memory, synth_jpeg_info *info, char *msg, int msglen) {
	struct jpeg_decompress_struct cinfo;
	error_mgr err;
	source_mgr src;
	setup(&cinfo, &err, &src, data, len, msg, msglen);
	if (setjmp(err.jump)) {
		int truncated = src.truncated;
		jpeg_destroy_decompress(&cinfo);
		return truncated ? SYNTH_JPEG_TRUNCATED : SYNTH_JPEG_ERROR;
	}
	if (max_memory > 0) cinfo.mem->max_memory_to_use = max_memory;
	jpeg_read_header(&cinfo, TRUE);
	int status = read_info(&cinfo, info);
	if (status != SYNTH_JPEG_OK) {
		jpeg_destroy_decompress(&cinfo);
		return status;
	}
	size_t stride = (size_t)info->width * (size_t)info->out_components;
	if (stride * (size_t)info->height > out_len) {
		jpeg_destroy_decompress(&cinfo);
		return SYNTH_JPEG_BUFFER;
	}
	jpeg_start_decompress(&cinfo);
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = out + (size_t)cinfo.output_scanline * stride;
		jpeg_read_scanlines(&cinfo, &row, 1);
	}
	jpeg_finish_decompress(&cinfo);
	status = src.truncated ? SYNTH_JPEG_TRUNCATED : SYNTH_JPEG_OK;
	jpeg_destroy_decompress(&cinfo);
	return status;
}
