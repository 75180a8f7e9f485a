package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"

	"synth/dataset"
	"synth/internal/filehash"
)

// Provenance is what made a record (docs/provenance.md): every record of a step's
// output carries it beside its "params". The fingerprint hashes the step's name,
// synth's version, the sha256 of every model file by role (model, lora, tokenizer,
// examples, ...) and every parameter that changes the result; throughput settings
// (batch sizes, threads, shards) are not part of it.
type Provenance struct {
	Fingerprint string            `json:"fingerprint"`
	Version     string            `json:"version"`
	Models      map[string]string `json:"models"`
	// Settings are the step's settings the fingerprint covers (a record's "params" may
	// hold more: per-item seeds, the context used), so a rerun can say what changed.
	Settings any `json:"settings"`
}

// NewProvenance computes the fingerprint of a step run.
func NewProvenance(step, version string, models map[string]string, params any) Provenance {
	js, err := json.Marshal(struct {
		Step    string            `json:"step"`
		Version string            `json:"version"`
		Models  map[string]string `json:"models"` // encoding/json sorts map keys
		Params  any               `json:"params"`
	}{step, version, models, params})
	if err != nil {
		panic(fmt.Sprintf("pipeline: fingerprint of %s: %v", step, err)) // params are plain structs: a bug
	}
	sum := sha256.Sum256(js)
	return Provenance{Fingerprint: hex.EncodeToString(sum[:8]), Version: version, Models: models, Settings: params}
}

// StaleError stops a step whose output holds records made differently: it names the
// output and what changed, and how to go on.
type StaleError struct {
	Step, Output string
	Records      int
	Changes      string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%s: %s: %d records were made differently (%s); rerun with --force to recompute them, or write to another output",
		e.Step, e.Output, e.Records, e.Changes)
}

// ErrStale is matched by every StaleError (errors.Is).
var ErrStale = errors.New("output made with other settings")

func (e *StaleError) Is(target error) bool { return target == ErrStale }

// staleRecords scans an existing JSONL output for records whose fingerprint is not
// prov's. With force they are to be dropped (the returned func, for
// dataset.OutputOptions.Drop); without, they stop the step with a StaleError that says
// what changed between the first such record and this run.
func staleRecords(step, path string, prov Provenance, params any, force bool) (func(map[string]json.RawMessage) bool, int, error) {
	stale := 0
	var first json.RawMessage
	err := dataset.ReadRecords(path, func(_ int, raw json.RawMessage) error {
		var rec struct {
			Provenance Provenance `json:"provenance"`
		}
		if json.Unmarshal(raw, &rec) != nil || rec.Provenance.Fingerprint != prov.Fingerprint {
			if stale == 0 {
				first = raw
			}
			stale++
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) || stale == 0 {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	drop := func(rec map[string]json.RawMessage) bool {
		var p Provenance
		return json.Unmarshal(rec["provenance"], &p) != nil || p.Fingerprint != prov.Fingerprint
	}
	if force {
		return drop, stale, nil
	}
	return nil, stale, &StaleError{Step: step, Output: path, Records: stale, Changes: changes(first, prov, params)}
}

// changes describes how an old record's provenance differs from a run's.
func changes(old json.RawMessage, prov Provenance, settings any) string {
	var rec struct {
		Provenance *struct {
			Provenance
			Settings map[string]any `json:"settings"`
		} `json:"provenance"`
	}
	if json.Unmarshal(old, &rec) != nil || rec.Provenance == nil || rec.Provenance.Fingerprint == "" {
		return "they carry no fingerprint: written by an older synth"
	}
	was := rec.Provenance
	var out []string
	if was.Version != prov.Version {
		out = append(out, fmt.Sprintf("synth version %s -> %s", was.Version, prov.Version))
	}
	for _, role := range unionKeys(was.Models, prov.Models) {
		a, b := was.Models[role], prov.Models[role]
		if a != b {
			out = append(out, fmt.Sprintf("%s %s -> %s", role, shortHash(a), shortHash(b)))
		}
	}
	var now map[string]any
	if js, err := json.Marshal(settings); err == nil {
		_ = json.Unmarshal(js, &now) // a struct marshals to an object
	}
	for _, k := range unionKeys(was.Settings, now) {
		a, b := was.Settings[k], now[k]
		if !reflect.DeepEqual(a, b) {
			out = append(out, fmt.Sprintf("%s %s -> %s", k, showValue(a), showValue(b)))
		}
	}
	if len(out) == 0 {
		return "fingerprint " + was.Fingerprint + " -> " + prov.Fingerprint
	}
	return strings.Join(out, ", ")
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

func shortHash(h string) string {
	switch {
	case h == "":
		return "none"
	case len(h) > 12:
		return h[:12]
	}
	return h
}

func showValue(v any) string {
	if v == nil {
		return "unset"
	}
	js, _ := json.Marshal(v)
	return string(js)
}

// Hashes computes sha256 of model files and folders, remembering them by path, total
// size and latest modification time in a JSON file, so a rerun does not read tens of
// GB of weights again. A nil *Hashes hashes without remembering.
type Hashes struct {
	file    string
	mu      sync.Mutex
	entries map[string]hashEntry
	dirty   bool
}

type hashEntry struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

// OpenHashes reads the remembered hashes from file (a missing or broken file is an
// empty memory: only a slower run).
func OpenHashes(file string) *Hashes {
	h := &Hashes{file: file, entries: map[string]hashEntry{}}
	if data, err := os.ReadFile(file); err == nil {
		_ = json.Unmarshal(data, &h.entries)
	}
	return h
}

// Sum is the sha256 (hex) of a file, or of a folder's regular files (their relative
// names and contents, in name order).
func (h *Hashes) Sum(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	size, mtime, err := treeStat(abs)
	if err != nil {
		return "", err
	}
	if h != nil {
		h.mu.Lock()
		e, ok := h.entries[abs]
		h.mu.Unlock()
		if ok && e.Size == size && e.ModTime == mtime {
			return e.SHA256, nil
		}
	}
	sum, err := filehash.Tree(abs)
	if err != nil {
		return "", err
	}
	if h != nil {
		h.mu.Lock()
		h.entries[abs] = hashEntry{Size: size, ModTime: mtime, SHA256: sum}
		h.dirty = true
		h.mu.Unlock()
	}
	return sum, nil
}

// Save writes the remembered hashes back when they changed.
func (h *Hashes) Save() error {
	if h == nil || h.file == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.dirty {
		return nil
	}
	data, err := json.MarshalIndent(h.entries, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(h.file), 0o755); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	h.dirty = false
	return dataset.WriteFileIfChanged(h.file, data)
}

// treeStat is the total size and latest modification time of a file or a folder's files.
func treeStat(path string) (size, mtime int64, err error) {
	err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		size += st.Size()
		mtime = max(mtime, st.ModTime().UnixNano())
		return nil
	})
	return size, mtime, err
}
