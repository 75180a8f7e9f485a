package native

import "fmt"

// placeholder until the ggml executor lands (same branch)
type gdevice struct{}
type gbuf struct{}
type gmat struct{}
type gkv struct{}

func ggmlDevices() []DeviceInfo { return nil }
func openGGML(name string) (*gdevice, error) {
	return nil, fmt.Errorf("%w %q", ErrNoDevice, name)
}
func (g *gdevice) newBuffer(d *Device, n int) *Buffer                 { panic("ggml") }
func (g *gdevice) write(t Tensor, data []float32)                     { panic("ggml") }
func (g *gdevice) freeBuffer(b *Buffer)                               { panic("ggml") }
func (g *gdevice) newExec(d *Device, threads int) (executor, error)   { panic("ggml") }
func (g *gdevice) newKV(rows, width int, dt DType) gkv                { panic("ggml") }
func (g *gdevice) freeKV(gkv)                                         { panic("ggml") }
func (g *gdevice) newMatrix(dt DType, raw []byte, n, k int) (gmat, error) { panic("ggml") }
func (g *gdevice) readMatrix(m *Matrix) []byte                        { panic("ggml") }
func (g *gdevice) freeMatrix(m *Matrix)                               { panic("ggml") }
