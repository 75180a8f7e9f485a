package pipeline

import "synth/native"

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
