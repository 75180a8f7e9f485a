//go:build !jpegstatic

package turbojpeg

// #cgo LDFLAGS: -ljpeg
import "C"
