package turbojpeg

import (
	"errors"
	"image"
	"os"
	"testing"
)

func TestHeaderAndDecode(t *testing.T) {
	cases := []struct {
		file        string
		comps       int
		progressive bool
		want        string
	}{
		{"rgb444.jpg", 3, false, "*image.RGBA"},
		{"rgb420_progressive.jpg", 3, true, "*image.RGBA"},
		{"gray.jpg", 1, false, "*image.Gray"},
		{"cmyk.jpg", 4, false, "*image.CMYK"},
	}
	for _, c := range cases {
		data, err := os.ReadFile("../imagefile/testdata/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		h, err := DecodeHeader(data)
		if err != nil || h.Width != 23 || h.Height != 17 || h.Components != c.comps || h.Progressive != c.progressive {
			t.Errorf("%s: header %+v, %v", c.file, h, err)
		}
		img, err := Decode(data, 0)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if got := typeName(img); got != c.want {
			t.Errorf("%s: %s, want %s", c.file, got, c.want)
		}
		if _, err := Decode(data, 23*17-1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: over the pixel limit: %v", c.file, err)
		}
		if _, err := Decode(data[:len(data)*2/3], 0); !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: truncated: %v", c.file, err)
		}
	}
	if _, err := DecodeHeader([]byte("\xff\xd8\xff\xe0 not really")); err == nil {
		t.Error("garbage header: no error")
	}
	if _, err := Decode(nil, 0); err == nil {
		t.Error("empty data: no error")
	}
}

func typeName(img image.Image) string {
	switch img.(type) {
	case *image.RGBA:
		return "*image.RGBA"
	case *image.Gray:
		return "*image.Gray"
	case *image.CMYK:
		return "*image.CMYK"
	}
	return "other"
}
