//go:build tools

package eval

// Pins gonum in go.mod until the statistics code imports it directly.
import _ "gonum.org/v1/gonum/stat"
