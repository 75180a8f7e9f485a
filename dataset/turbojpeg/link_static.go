//go:build jpegstatic

package turbojpeg

// The portable build (make PORTABLE=1, make dist) links Debian's libjpeg.a
// (libjpeg62-turbo-dev) so that the binary runs where libjpeg-turbo is not installed.

// #cgo LDFLAGS: -l:libjpeg.a
import "C"
