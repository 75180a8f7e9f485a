package dataset

import (
	"encoding/json"
	"fmt"
	"strings"
)

// MergeOptions configure MergeShards.
type MergeOptions struct {
	// Shards is the n of the --shard i/n the outputs were made with, to name the shard
	// that owns a missing item (0: unknown).
	Shards int
	// AllowErrors counts records with an "error" field as done (else as missing).
	AllowErrors bool
}

// MergeShards checks that the shard outputs files together hold exactly one record for
// every item of the manifest (per image: id and image, else per product: id): no item
// missing, none twice, none foreign. It writes them to out in manifest order, so the
// result does not depend on how the job was split, and returns the record count.
func MergeShards(manifest string, perImage bool, files []string, out string, o MergeOptions) (int, error) {
	m, err := ReadManifest(manifest)
	if err != nil {
		return 0, err
	}
	var order []string // expected keys in manifest order
	owner := map[string]string{}
	for _, p := range m.Products {
		if !perImage {
			order = append(order, p.ID)
			owner[p.ID] = p.ID
			continue
		}
		for _, img := range p.Images {
			k := JoinKey(p.ID, img)
			order = append(order, k)
			owner[k] = p.ID
		}
	}
	keyOf := KeyFields("id")
	if perImage {
		keyOf = KeyFields("id", "image")
	}
	recs := map[string]json.RawMessage{}
	from := map[string]string{}
	for _, f := range files {
		err := ReadRecords(f, func(line int, raw json.RawMessage) error {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(raw, &fields); err != nil {
				return fmt.Errorf("dataset: merge: %s:%d: not a JSON object", f, line)
			}
			k, err := keyOf(fields)
			if err != nil {
				return fmt.Errorf("dataset: merge: %s:%d: %v", f, line, err)
			}
			if _, ok := owner[k]; !ok {
				return fmt.Errorf("dataset: merge: %s:%d: %s is not an item of %s", f, line, showKey(k), m.Path)
			}
			if prev, dup := from[k]; dup {
				return fmt.Errorf("dataset: merge: %s is in both %s and %s:%d", showKey(k), prev, f, line)
			}
			if _, failed := fields["error"]; failed && !o.AllowErrors {
				return nil
			}
			recs[k] = raw
			from[k] = fmt.Sprintf("%s:%d", f, line)
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	var missing []string
	for _, k := range order {
		if _, ok := recs[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("dataset: merge: %d of %d items have no record; first: %s", len(missing), len(order), describeMissing(missing, owner, o.Shards))
	}
	var b strings.Builder
	for _, k := range order {
		b.Write(recs[k])
		b.WriteByte('\n')
	}
	if err := writeIfChanged(out, []byte(b.String())); err != nil {
		return 0, err
	}
	return len(order), nil
}

func showKey(k string) string { return strings.ReplaceAll(k, "\x1f", " / ") }

func describeMissing(keys []string, owner map[string]string, shards int) string {
	var parts []string
	for i, k := range keys {
		if i == 5 {
			parts = append(parts, "...")
			break
		}
		s := showKey(k)
		if shards > 0 {
			for i := 0; i < shards; i++ {
				if (Shard{Index: i, Count: shards}).Has(owner[k]) {
					s += fmt.Sprintf(" (shard %d/%d)", i, shards)
				}
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
