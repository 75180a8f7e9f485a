//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package weights

import "os"

// mapFile reads the whole file where synth has no mmap (the data is then a private copy).
func mapFile(path string) (data []byte, release func() error, err error) {
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}
