package weights

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// Format names a checkpoint container.
type Format string

// The formats Open recognises.
const (
	FormatSafetensors Format = "safetensors" // single file or sharded (index.json)
	FormatTorch       Format = "torch"       // torch.save zip (.pt, .bin), sharded .bin too
	FormatGGUF        Format = "gguf"
	FormatMemory      Format = "memory"    // built with FromTensors
	FormatSynthetic   Format = "synthetic" // made up on request, see Synthetic
)

// KV is one metadata entry. Value is one of the Go types of GGUF's value types:
// uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64, bool, string,
// or a slice of one of them ([]string, []int32, ...). safetensors' __metadata__ and the
// index.json "metadata" entries are strings.
type KV struct {
	Key   string
	Value any
}

// ArrayLen is the element count of a metadata value that is an array (one of KV's slice
// types), -1 for a scalar.
func ArrayLen(v any) int {
	switch x := v.(type) {
	case []string:
		return len(x)
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float32:
		return len(x)
	case []float64:
		return len(x)
	case []bool:
		return len(x)
	}
	return -1
}

// ConfigKey is the GGUF metadata key that holds the config.json text of a converted
// model, so that a loader gets the same Config() from the GGUF file as from the folder.
const ConfigKey = "synth.config_json"

// Source is an opened checkpoint: the list of tensors with zero-copy access to their bytes
// (memory-mapped), metadata, and the model's config.json text when there is one. A Source
// is safe for concurrent reads. Close it when done; tensor Data is invalid afterwards.
type Source struct {
	path    string
	format  Format
	files   []string
	config  []byte
	meta    []KV
	tensors []Tensor
	fileIdx []int // tensors[i] lives in files[fileIdx[i]]
	byName  map[string]int
	release []func() error
	maps    [][]byte // the memory-mapped files, for Release

	gen   Generator  // Synthetic sources: makes up requested tensors
	genMu sync.Mutex // guards tensors and byName of a Synthetic source
}

// Open detects the format of path and opens it:
//
//   - a folder (Hugging Face layout): config.json (optional) plus, first found of,
//     model.safetensors.index.json (or the only *.safetensors.index.json) with its shards,
//     model.safetensors, the only *.safetensors, pytorch_model.bin.index.json with its
//     shards, pytorch_model.bin, the only *.bin or *.pt, the only *.gguf;
//   - a file, by its content (not its name): safetensors, a torch.save zip (.pt, .bin;
//     legacy pre-1.6 pickles are refused with a hint), or GGUF;
//   - a *.index.json file: that sharded checkpoint.
//
// Every header is validated (see the format-specific docs); errors wrap ErrFormat,
// ErrUnsafe or an os error and name the file and tensor.
func Open(path string) (*Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("weights: open %s: %w", path, err)
	}
	if st.IsDir() {
		return openFolder(path)
	}
	if strings.HasSuffix(path, ".index.json") {
		return openIndex(path)
	}
	s := &Source{path: path}
	if err := s.addFile(path, ""); err != nil {
		s.Close()
		return nil, err
	}
	if s.format == FormatGGUF {
		s.configFromGGUF()
	}
	return s, nil
}

// FromTensors makes an in-memory Source (for tests and for models built from random
// weights in benchmarks). Tensor data is used as given, not copied.
func FromTensors(name string, tensors []Tensor, config []byte, meta []KV) (*Source, error) {
	s := &Source{path: name, format: FormatMemory, files: []string{name}, config: config, meta: meta}
	for _, t := range tensors {
		if err := checkTensor(t); err != nil {
			return nil, fmt.Errorf("weights: %s: %w", name, err)
		}
		if err := s.add(t, 0, name); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Generator makes up the tensor called name with the given dims (PyTorch order) for a
// Synthetic source. It must be a pure function of its arguments: a released tensor is
// made again when it is read again.
type Generator func(name string, dims []int) (Tensor, error)

// Synthetic returns a source that holds nothing until a loader asks: each tensor a
// Scope fetches (with the dims the loader states) is made by gen and recorded, so that
// after a model is loaded from it, Tensors lists exactly the checkpoint that model
// reads — the model's loader stays the one list of its tensor names, for random models
// in tests, benchmarks and the demo. Scope.Optional finds nothing in it (optional
// tensors are not made up), and Release drops a tensor's data (gen makes it again if
// needed), so a large random model costs about its loaded size.
func Synthetic(name string, config []byte, gen Generator) *Source {
	return &Source{path: name, format: FormatSynthetic, files: []string{name}, config: config, gen: gen}
}

// make returns the tensor called name of a Synthetic source, making it with dims
// when it is new (or was released).
func (s *Source) make(name string, dims []int) (Tensor, error) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	if i, ok := s.byName[name]; ok && s.tensors[i].Data != nil {
		return s.tensors[i], nil
	}
	for _, d := range dims {
		if d < 0 {
			return Tensor{}, fmt.Errorf("weights: %s: tensor %q: %w: dims %v are not all known", s.path, name, ErrShape, dims)
		}
	}
	t, err := s.gen(name, slices.Clone(dims))
	if err != nil {
		return Tensor{}, fmt.Errorf("weights: %s: make tensor %q: %w", s.path, name, err)
	}
	t.Name = name
	if err := checkTensor(t); err != nil {
		return Tensor{}, fmt.Errorf("weights: %s: %w", s.path, err)
	}
	if i, ok := s.byName[name]; ok {
		s.tensors[i] = t
		return t, nil
	}
	return t, s.add(t, 0, s.path)
}

func checkTensor(t Tensor) error {
	if !t.DType.Valid() {
		return fmt.Errorf("tensor %q: %w: invalid dtype", t.Name, ErrDType)
	}
	n, err := numel(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w: %v", t.Name, ErrShape, err)
	}
	size, err := t.DType.ByteSize(n)
	if err != nil {
		return fmt.Errorf("tensor %q: %w: %v", t.Name, ErrShape, err)
	}
	if int64(len(t.Data)) != size {
		return fmt.Errorf("tensor %q: %w: %d bytes for %s %v, want %d", t.Name, ErrShape, len(t.Data), t.DType, t.Shape, size)
	}
	return nil
}

// Path is what was opened (file or folder).
func (s *Source) Path() string { return s.path }

// Format is the container format.
func (s *Source) Format() Format { return s.format }

// Files lists the files holding the tensors (several for a sharded checkpoint).
func (s *Source) Files() []string { return slices.Clone(s.files) }

// Config is the model's config.json text: from the folder for a folder, from the
// synth.config_json metadata for a GGUF file that has it, nil otherwise.
func (s *Source) Config() []byte { return s.config }

// Metadata lists the metadata entries in file order: GGUF key-values with their types,
// safetensors __metadata__ (string values) of each shard and the index's "metadata".
func (s *Source) Metadata() []KV { return s.meta }

// Meta returns the value of a metadata key.
func (s *Source) Meta(key string) (any, bool) {
	for _, kv := range s.meta {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// MetaString returns a string metadata value.
func (s *Source) MetaString(key string) (string, bool) {
	v, ok := s.Meta(key)
	str, isStr := v.(string)
	return str, ok && isStr
}

// Tensors lists every tensor in file order (shard by shard); for a Synthetic source,
// the tensors made so far, in the order they were asked for (released ones made
// again).
func (s *Source) Tensors() []Tensor {
	if s.gen == nil {
		return slices.Clone(s.tensors)
	}
	s.genMu.Lock()
	names := make([]string, len(s.tensors))
	dims := make([][]int, len(s.tensors))
	for i, t := range s.tensors {
		names[i], dims[i] = t.Name, t.Shape
	}
	s.genMu.Unlock()
	out := make([]Tensor, len(names))
	for i := range names {
		t, err := s.make(names[i], dims[i])
		if err != nil {
			panic(err) // gen made this tensor before: a Generator must be pure
		}
		out[i] = t
	}
	return out
}

// Len is the number of tensors.
func (s *Source) Len() int { return len(s.tensors) }

// Has reports whether the checkpoint holds a tensor called name.
func (s *Source) Has(name string) bool {
	_, ok := s.byName[name]
	return ok
}

// Tensor returns the tensor called name, or an error wrapping ErrMissing.
func (s *Source) Tensor(name string) (Tensor, error) {
	i, ok := s.byName[name]
	if !ok {
		return Tensor{}, fmt.Errorf("weights: %s: tensor %q: %w", s.path, name, ErrMissing)
	}
	return s.tensors[i], nil
}

// FileOf names the file that holds tensor name ("" when there is no such tensor).
func (s *Source) FileOf(name string) string {
	i, ok := s.byName[name]
	if !ok {
		return ""
	}
	return s.files[s.fileIdx[i]]
}

// ParamCount is the total number of values over all tensors.
func (s *Source) ParamCount() int64 {
	var n int64
	for _, t := range s.tensors {
		n += int64(t.Numel())
	}
	return n
}

// Close unmaps the files. Tensor data obtained from s must not be used afterwards.
func (s *Source) Close() error {
	var errs []error
	for _, r := range s.release {
		errs = append(errs, r())
	}
	s.release, s.maps = nil, nil
	return errors.Join(errs...)
}

// Release hands the memory pages of t's data back to the OS when they belong to a file
// s has memory-mapped: the pages wholly inside t's byte range leave the process's
// resident memory (madvise MADV_DONTNEED on the read-only file mapping: the pages are
// clean, so if t is read again they fault back in from the file, unchanged). Call it
// once t's bytes have been converted or copied (packed into a native.Matrix) and
// nothing reads them in place: without it, a model loaded from a mapped file keeps the
// file resident beside its own copy of the weights. It is a no-op for tensors of
// in-memory sources, data outside s's mappings, a closed Source, and on systems other
// than Linux. Safe for concurrent use.
func (s *Source) Release(t Tensor) error {
	if len(t.Data) == 0 {
		return nil
	}
	if s.gen != nil {
		s.genMu.Lock()
		if i, ok := s.byName[t.Name]; ok {
			s.tensors[i].Data = nil
		}
		s.genMu.Unlock()
		return nil
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(t.Data)))
	hi := lo + uintptr(len(t.Data))
	for _, m := range s.maps {
		base := uintptr(unsafe.Pointer(unsafe.SliceData(m)))
		if lo >= base && hi <= base+uintptr(len(m)) {
			if err := releasePages(m, int(lo-base), int(hi-base)); err != nil {
				return fmt.Errorf("weights: %s: release tensor %q: %w", s.path, t.Name, err)
			}
			return nil
		}
	}
	return nil
}

func (s *Source) add(t Tensor, file int, fileName string) error {
	if s.byName == nil {
		s.byName = map[string]int{}
	}
	if j, dup := s.byName[t.Name]; dup {
		return fmt.Errorf("weights: %w: tensor %q is in both %s and %s", ErrFormat, t.Name, s.files[s.fileIdx[j]], fileName)
	}
	s.byName[t.Name] = len(s.tensors)
	s.tensors = append(s.tensors, t)
	s.fileIdx = append(s.fileIdx, file)
	return nil
}

// addFile maps path, detects its format and adds its tensors. want, when set, is the
// format the caller expects (a shard of a safetensors index must be safetensors).
func (s *Source) addFile(path string, want Format) error {
	data, release, err := mapFile(path)
	if err != nil {
		return fmt.Errorf("weights: open %s: %w", path, err)
	}
	s.release = append(s.release, release)
	s.maps = append(s.maps, data)
	f, err := sniff(data)
	if err != nil {
		return fmt.Errorf("weights: %s: %w", path, err)
	}
	if want != "" && f != want {
		return fmt.Errorf("weights: %s: %w: expected a %s file, found %s", path, ErrFormat, want, f)
	}
	if s.format == "" {
		s.format = f
	}
	var (
		tensors []Tensor
		meta    []KV
	)
	switch f {
	case FormatSafetensors:
		tensors, meta, err = parseSafetensors(data, path)
	case FormatTorch:
		tensors, err = parseTorchZip(data, path)
	case FormatGGUF:
		var g *GGUFFile
		g, err = parseGGUF(data, path)
		if err == nil {
			tensors, meta = g.Tensors, g.KV
		}
	}
	if err != nil {
		return err
	}
	idx := len(s.files)
	s.files = append(s.files, path)
	s.meta = append(s.meta, meta...)
	for _, t := range tensors {
		if err := s.add(t, idx, path); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) configFromGGUF() {
	if c, ok := s.MetaString(ConfigKey); ok {
		s.config = []byte(c)
	}
}

// legacyTorchHint is the fix for a pre-zip torch checkpoint.
const legacyTorchHint = "this is a legacy torch.save file (before torch 1.6): re-save it with torch>=1.6, " +
	"e.g. python -c \"import torch,sys; torch.save(torch.load(sys.argv[1], map_location='cpu'), sys.argv[1])\" FILE"

// torchLegacyMagic starts every legacy (pre-zip) torch.save file: a protocol-2 pickle of
// the integer 0x1950a86a20f9469cfc6c (torch/serialization.py MAGIC_NUMBER).
var torchLegacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// sniff detects a file's format from its first bytes.
func sniff(data []byte) (Format, error) {
	switch {
	case len(data) >= 4 && string(data[:4]) == "GGUF":
		return FormatGGUF, nil
	case len(data) >= 4 && string(data[:4]) == "PK\x03\x04":
		return FormatTorch, nil
	case len(data) >= 9 && data[8] == '{':
		return FormatSafetensors, nil
	case bytes.HasPrefix(data, torchLegacyMagic):
		return "", fmt.Errorf("%w: %s", ErrFormat, legacyTorchHint)
	case len(data) >= 262 && string(data[257:262]) == "ustar":
		return "", fmt.Errorf("%w: tar archive: %s", ErrFormat, legacyTorchHint)
	case len(data) >= 2 && data[0] == 0x80 && data[1] <= 5:
		return "", fmt.Errorf("%w: a bare pickle, not a torch.save zip: %s", ErrFormat, legacyTorchHint)
	case len(data) == 0:
		return "", fmt.Errorf("%w: empty file", ErrFormat)
	}
	return "", fmt.Errorf("%w: not safetensors, a torch zip or GGUF (first bytes % x)", ErrFormat, data[:min(len(data), 8)])
}

// maxJSONFile caps config.json and index.json reads; real ones are kilobytes to a few MiB.
const maxJSONFile = 64 << 20

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJSONFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJSONFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrFormat, path, maxJSONFile)
	}
	return b, nil
}

func openFolder(dir string) (*Source, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("weights: open %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	has := func(n string) bool { return slices.Contains(names, n) }
	withSuffix := func(suffixes ...string) []string {
		var out []string
		for _, n := range names {
			for _, suf := range suffixes {
				if strings.HasSuffix(n, suf) && !strings.HasSuffix(n, ".index.json") {
					out = append(out, n)
					break
				}
			}
		}
		return out
	}
	var indexes []string
	for _, n := range names {
		if strings.HasSuffix(n, ".safetensors.index.json") {
			indexes = append(indexes, n)
		}
	}

	var (
		src    *Source
		choice string
	)
	one := func(kind string, list []string) (string, error) {
		if len(list) > 1 {
			return "", fmt.Errorf("weights: %s: %w: %d %s files (%s) and none has the standard name: open one file directly",
				dir, ErrFormat, len(list), kind, strings.Join(list, ", "))
		}
		if len(list) == 1 {
			return list[0], nil
		}
		return "", nil
	}
	switch {
	case has("model.safetensors.index.json"):
		choice = "model.safetensors.index.json"
	case len(indexes) == 1:
		choice = indexes[0]
	case len(indexes) > 1:
		return nil, fmt.Errorf("weights: %s: %w: several safetensors indexes (%s)", dir, ErrFormat, strings.Join(indexes, ", "))
	case has("model.safetensors"):
		choice = "model.safetensors"
	default:
		c, err := one("safetensors", withSuffix(".safetensors"))
		if err != nil {
			return nil, err
		}
		choice = c
	}
	if choice == "" {
		switch {
		case has("pytorch_model.bin.index.json"):
			choice = "pytorch_model.bin.index.json"
		case has("pytorch_model.bin"):
			choice = "pytorch_model.bin"
		default:
			c, err := one("torch", withSuffix(".bin", ".pt", ".pth"))
			if err != nil {
				return nil, err
			}
			choice = c
		}
	}
	if choice == "" {
		c, err := one("gguf", withSuffix(".gguf"))
		if err != nil {
			return nil, err
		}
		choice = c
	}
	if choice == "" {
		return nil, fmt.Errorf("weights: %s: %w: no weights found (looked for *.safetensors, a safetensors index, *.bin, *.pt, *.gguf)", dir, ErrMissing)
	}
	full := filepath.Join(dir, choice)
	if strings.HasSuffix(choice, ".index.json") {
		src, err = openIndex(full)
	} else {
		src, err = Open(full)
	}
	if err != nil {
		return nil, err
	}
	src.path = dir
	if has("config.json") {
		cfg, err := readSmallFile(filepath.Join(dir, "config.json"))
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("weights: read %s: %w", filepath.Join(dir, "config.json"), err)
		}
		src.config = cfg
	}
	return src, nil
}

// shardIndex is model.safetensors.index.json / pytorch_model.bin.index.json.
type shardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// openIndex opens a sharded checkpoint. Every tensor of the weight map must be in the shard
// it names, and every tensor of every shard must be listed for that shard; shard names
// must be plain file names in the index's folder.
func openIndex(path string) (*Source, error) {
	raw, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("weights: read %s: %w", path, err)
	}
	var idx shardIndex
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // total_size printed as written, not as a float
	if err := dec.Decode(&idx); err != nil {
		return nil, fmt.Errorf("weights: %s: %w: %v", path, ErrFormat, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("weights: %s: %w: empty or missing weight_map", path, ErrFormat)
	}
	want := FormatSafetensors
	if strings.HasSuffix(path, ".bin.index.json") {
		want = FormatTorch
	}
	dir := filepath.Dir(path)
	var shards []string
	for name, shard := range idx.WeightMap {
		if shard == "" || shard != filepath.Base(shard) || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) {
			return nil, fmt.Errorf("weights: %s: %w: tensor %q maps to %q, which is not a file name in the same folder", path, ErrFormat, name, shard)
		}
		if !slices.Contains(shards, shard) {
			shards = append(shards, shard)
		}
	}
	sort.Strings(shards)
	s := &Source{path: path}
	for _, sh := range shards {
		if err := s.addFile(filepath.Join(dir, sh), want); err != nil {
			s.Close()
			return nil, err
		}
	}
	for name, shard := range idx.WeightMap {
		i, ok := s.byName[name]
		if !ok {
			s.Close()
			return nil, fmt.Errorf("weights: %s: tensor %q: %w: listed for shard %s but not in it", path, name, ErrMissing, shard)
		}
		if got := filepath.Base(s.files[s.fileIdx[i]]); got != shard {
			s.Close()
			return nil, fmt.Errorf("weights: %s: %w: tensor %q is listed for shard %s but stored in %s", path, ErrFormat, name, shard, got)
		}
	}
	for _, t := range s.tensors {
		if _, ok := idx.WeightMap[t.Name]; !ok {
			s.Close()
			return nil, fmt.Errorf("weights: %s: %w: tensor %q of shard %s is not in the index's weight_map", path, ErrFormat, t.Name, s.FileOf(t.Name))
		}
	}
	keys := make([]string, 0, len(idx.Metadata))
	for k := range idx.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.meta = append(s.meta, KV{Key: k, Value: fmt.Sprint(idx.Metadata[k])})
	}
	return s, nil
}
