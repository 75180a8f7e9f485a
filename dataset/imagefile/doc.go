// Package imagefile decodes image files into Go images that keep the mode PIL would
// give them, so that preprocessing can follow upstream (PIL) exactly:
//
//	img, err := imagefile.Decode("img/p123_0.jpg", imagefile.Limits{})
//
// The format comes from the file's first bytes, never its name. Sizes are read from the
// header and checked against Limits before any pixel memory is allocated, so a
// 20000x20000 PNG header is refused at once and memory stays bounded. ReadFile, which
// Decode uses and which eval calls for its cache keys, is the one check before any image
// file is read: a regular file (never a FIFO or a device) of at most MaxFileBytes.
//
// Formats and the Go type each PIL mode becomes:
//
//	JPEG  grey -> *image.Gray (L); YCbCr/RGB -> *image.RGBA, opaque (RGB);
//	      CMYK/YCCK -> *image.CMYK (CMYK, Adobe inverted). Decoded by libjpeg-turbo
//	      (package dataset/turbojpeg), PIL's decoder, baseline and progressive.
//	PNG   grey 2/4/8-bit -> *image.Gray (L); grey 1-bit -> *image.Paletted black/white
//	      (PIL's "1", which resizes like a palette image); grey 16-bit -> *image.Gray16
//	      (PIL's "I"); RGB -> *image.RGBA, opaque (RGB); palette -> *image.Paletted (P);
//	      grey+alpha and RGBA -> *image.NRGBA (LA, RGBA). 16-bit colour keeps the high
//	      byte, as PIL's unpackers do; a tRNS colour key leaves the mode as it is (PIL
//	      keeps it in info["transparency"], which convert("RGB") ignores).
//	GIF   first frame on the logical screen (filled with the transparent index, else 0)
//	      -> *image.Paletted (P) with the file's palette colours, or *image.Gray (L) when
//	      the palette is the identity grey ramp, as PIL 9.4 does.
//	WebP  golang.org/x/image/webp: lossy -> *image.YCbCr (RGB), lossy with alpha and
//	      lossless -> *image.NRGBA (RGBA). PIL uses libwebp, whose YUV -> RGB conversion
//	      differs by a few levels from Go's: WebP is not bit-exact.
//
// EXIF orientation is not applied (PIL does not apply it on open either).
//
// imagefile must not import vision, llm, eval or cmd.
package imagefile
