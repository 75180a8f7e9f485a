package pipeline

import "synth/native"

// Bounds of the vision settings: far past any real use, and low enough that a mistyped
// value (batch 1000000000) is a bad setting instead of an allocation that kills the
// process.
const (
	maxBatch = 1024 // images or texts per forward pass (caption, embed, eval)
	maxBeams = 64
	maxSlots = 4096 // caption: batch x beams sequences in one KV cache
)

// openDevice opens a device setting; an unknown name is a bad setting naming the
// devices there are.
func openDevice(name string) (*native.Device, error) {
	d, err := native.OpenDevice(name)
	if err != nil {
		return nil, badf("device", "%v", err)
	}
	return d, nil
}

// deviceBatch is a batch setting, or when it is 0 the default for the device: small
// batches keep a CPU's caches warm, a GPU needs many images at once to be busy.
func deviceBatch(batch int, d *native.Device, cpu, gpu int) int {
	switch {
	case batch > 0:
		return batch
	case d.GPU():
		return gpu
	}
	return cpu
}
