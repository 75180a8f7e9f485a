//go:build !unix

package imagefile

import "os"

func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }
