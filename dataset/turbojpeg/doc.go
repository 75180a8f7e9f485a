// Package turbojpeg decodes JPEG files with libjpeg-turbo (cgo, the libjpeg API, linked
// with -ljpeg, or with libjpeg.a under the jpegstatic build tag of portable builds;
// Debian: libjpeg62-turbo-dev), the decoder PIL uses, so that decoded pixels match
// upstream's: ISLOW DCT and fancy (interpolating) chroma upsampling, progressive and
// baseline files, greyscale, YCbCr/RGB and CMYK/YCCK. Go's image/jpeg replicates
// subsampled chroma instead and differs by up to ~80 levels on 4:2:0 files.
//
// Results keep PIL's mode: *image.Gray (L), *image.RGBA with alpha 255 (RGB) and
// *image.CMYK (CMYK: 4-component files are read with Adobe's inverted convention, as
// PIL's "CMYK;I" raw mode assumes).
//
// Read the header first (DecodeHeader) to check the size before decoding. A file that
// ends early is an error (ErrTruncated), as in PIL without LOAD_TRUNCATED_IMAGES.
//
// turbojpeg imports only the standard library; it must not import vision, llm, eval or cmd.
package turbojpeg
