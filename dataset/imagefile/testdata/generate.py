# Generates synth's PIL-parity test data with Debian's Pillow 9.4.0 (python3-pil).
import base64, io, json, os, sys
import numpy as np
from PIL import Image
import PIL
assert PIL.__version__ == "9.4.0", PIL.__version__

rng = np.random.default_rng(20240521)
W, H = 23, 17

def b64(a): return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()

def pattern(ch):
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([(x * 11 + y * 3 + 40 * c) % 256 for c in range(ch)], -1).astype(np.uint8)
    noise = rng.integers(0, 256, size=(H, W, ch), dtype=np.uint8)
    base[5:11, 6:15] = noise[5:11, 6:15]
    return base

def transform_rgb(im, n):
    # torchvision 0.14 Resize(n) + CenterCrop(n) + convert("RGB") on a PIL image
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = n, int(n * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - n) / 2.0)), int(round((nh - n) / 2.0))
    im = im.crop((left, top, left + n, top + n))
    return np.asarray(im.convert("RGB"))

# ---- preprocess: in-memory images per mode, PIL's transform output
cases = []
def add_pre(name, im, raw, extra=None):
    c = {"name": name, "mode": im.mode, "width": im.size[0], "height": im.size[1], "pixels": b64(raw), "outputs": []}
    if extra: c.update(extra)
    for n in (8, 40):
        c["outputs"].append({"n": n, "rgb": b64(transform_rgb(im, n))})
    cases.append(c)

rgba = pattern(4); rgba[..., 3][rgba[..., 3] < 60] = 0; rgba[0, :, 3] = 255
add_pre("rgba", Image.fromarray(rgba, "RGBA"), rgba)
la = pattern(2); la[2:4, :, 1] = 0
add_pre("la", Image.fromarray(la, "LA"), la)
cmyk = pattern(4)
add_pre("cmyk", Image.fromarray(cmyk, "CMYK"), cmyk)
i32 = pattern(1)[..., 0].astype(np.int32) * 3  # in range and above 255 (16-bit PNG values)
imI = Image.fromarray(i32, "I")
add_pre("i32", imI, i32.astype("<i4"))
bil = (pattern(1)[..., 0] > 128)
im1 = Image.fromarray(bil)  # mode "1"
add_pre("bilevel", im1, bil.astype(np.uint8))
gray = pattern(1)[..., 0]
add_pre("gray", Image.fromarray(gray, "L"), gray)
json.dump({"pillow": PIL.__version__, "cases": cases}, open(sys.argv[2] + "/modes.json", "w"), indent=0)

# ---- imagefile: files and what PIL decodes them to
files = []
out = sys.argv[1]
def save(name, im, **kw):
    im.save(os.path.join(out, name), **kw)
def expect(name):
    im = Image.open(os.path.join(out, name))
    im.load()
    e = {"file": name, "mode": im.mode, "width": im.size[0], "height": im.size[1]}
    a = np.asarray(im)
    if im.mode == "1": a = a.astype(np.uint8)
    if im.mode == "I": a = a.astype("<i4")
    e["pixels"] = b64(a)
    if im.mode == "P":
        pal = im.getpalette()  # RGB triples
        e["palette"] = b64(np.array(pal, dtype=np.uint8))
    files.append(e)

rgb = pattern(3)
save("rgb444.jpg", Image.fromarray(rgb), quality=90, subsampling=0); expect("rgb444.jpg")
save("rgb420_progressive.jpg", Image.fromarray(rgb), quality=85, subsampling=2, progressive=True); expect("rgb420_progressive.jpg")
save("gray.jpg", Image.fromarray(gray, "L"), quality=90); expect("gray.jpg")
save("cmyk.jpg", Image.fromarray(cmyk, "CMYK"), quality=95); expect("cmyk.jpg")
save("gray16.png", Image.fromarray((pattern(1)[..., 0].astype(np.uint16) * 200), "I;16")); expect("gray16.png")
save("bilevel.png", im1); expect("bilevel.png")
save("rgb_trns.png", Image.fromarray(rgb), transparency=tuple(int(v) for v in rgb[0, 0])); expect("rgb_trns.png")
save("la.png", Image.fromarray(la, "LA")); expect("la.png")
pal = Image.fromarray(rgb).quantize(colors=37)
save("palette_trns.png", pal, transparency=3); expect("palette_trns.png")
save("palette.gif", pal, transparency=5); expect("palette.gif")
save("gray.gif", Image.fromarray(gray, "L")); expect("gray.gif")
ramp = (np.arange(W * H) % 256).astype(np.uint8).reshape(H, W)
save("gray_identity.gif", Image.fromarray(ramp, "L"), optimize=False); expect("gray_identity.gif")
save("rgba_lossless.webp", Image.fromarray(rgba, "RGBA"), lossless=True); expect("rgba_lossless.webp")
json.dump({"pillow": PIL.__version__, "files": files}, open(os.path.join(out, "expected.json"), "w"), indent=0)
print("ok", [f["file"] + ":" + f["mode"] for f in files])
