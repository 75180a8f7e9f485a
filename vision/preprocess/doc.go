// Package preprocess is Long-CLIP's image transform, _transform(n_px), reproduced from
// PIL 9.4 and torchvision 0.14 so that the pixels match upstream bit for bit:
//
//	Resize(n_px, BICUBIC) -> CenterCrop(n_px) -> convert("RGB") -> ToTensor -> Normalize
//
//	x, err := preprocess.CLIP(img, 224) // []float32, [3, 224, 224]
//
// and BLIP-2's (transformers' BlipImageProcessor), built from the same PIL pieces:
//
//	convert("RGB") -> resize to (n, n) BICUBIC -> rescale 1/255 -> normalize (CLIP mean/std)
//
//	x, err := preprocess.BLIP(img, 224) // []float32, [3, 224, 224]
//
// The resize is PIL's ImagingResample with the bicubic filter (a = -0.5, support widened
// by the reduction factor, 22-bit fixed-point weights, 8-bit result of each separable
// pass, horizontal first); palette images use PIL's nearest neighbour on the indices, and
// RGBA/LA images are resized premultiplied and un-premultiplied, as PIL does. See
// docs/longclip.md for the specification.
//
// # Which PIL mode an image.Image stands for
//
// PIL's behaviour depends on the image mode, so each Go image type is read as one mode
// (package dataset/imagefile decodes files into exactly these types):
//
//	*image.Gray      L     *image.Paletted  P (also PIL's "1": a two-colour palette)
//	*image.RGBA      RGB when every pixel is opaque, else RGBA (un-premultiplied first)
//	*image.NRGBA     RGBA  (LA too: with R = G = B the result is the same)
//	*image.CMYK      CMYK  (resized in CMYK, then PIL's cmyk2rgb)
//	*image.Gray16    I     (PIL opens 16-bit grey PNG as 32-bit "I"; convert("RGB")
//	                        clips values above 255 to white, as upstream does)
//	*image.YCbCr     RGB   (Go's YCbCr -> RGB conversion)
//	*image.NRGBA64, *image.RGBA64: the high byte of each sample, as PIL's 16-bit unpackers
//	other types      RGBA through color.NRGBAModel (RGB when opaque)
//
// preprocess imports only the standard library; it must not import llm, eval, dataset or cmd.
package preprocess
