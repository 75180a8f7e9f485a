package pipeline

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// A step's settings are the fields of its Params struct that carry a `set` tag. The same
// list gives the command's flags (cmd/synth), the keys of the step's section in
// synth.yaml, their defaults and their aliases, so a setting is named, parsed and
// checked in one place for both. Tags:
//
//	set:"max-new-tokens,max-tokens"  the name, then aliases (docs/parameters.md)
//	def:"120"                        the default, in the form a flag takes
//	usage:"..."                      help text
//	path:"1"                         a file or folder: synth.yaml resolves it against its own folder
//	req:"1"                          required
//
// Field types: string, bool, int, uint64, float64. Embedded structs are flattened.

// Setting describes one setting.
type Setting struct {
	Name     string
	Aliases  []string
	Usage    string
	Default  string
	Bool     bool
	Path     bool
	Required bool
	index    []int
}

// Names is the name followed by the aliases.
func (s Setting) Names() []string { return append([]string{s.Name}, s.Aliases...) }

// Settings lists the settings of params, a pointer to a Params struct, in field order.
func Settings(params any) []Setting {
	return settingsOf(reflect.TypeOf(params).Elem(), nil)
}

func settingsOf(t reflect.Type, prefix []int) []Setting {
	var out []Setting
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		idx := append(append([]int{}, prefix...), i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, settingsOf(f.Type, idx)...)
			continue
		}
		tag, ok := f.Tag.Lookup("set")
		if !ok {
			continue
		}
		names := strings.Split(tag, ",")
		out = append(out, Setting{
			Name: names[0], Aliases: names[1:], Usage: f.Tag.Get("usage"), Default: f.Tag.Get("def"),
			Bool: f.Type.Kind() == reflect.Bool, Path: f.Tag.Get("path") != "", Required: f.Tag.Get("req") != "",
			index: idx,
		})
	}
	return out
}

// Lookup finds a setting by its name or an alias.
func Lookup(params any, name string) (Setting, bool) {
	for _, s := range Settings(params) {
		for _, n := range s.Names() {
			if n == name {
				return s, true
			}
		}
	}
	return Setting{}, false
}

// SetDefaults sets every setting of params to its default (zero when it has none): the
// tag's, or the step's own where it overrides a shared setting's (a translation's low
// temperature).
func SetDefaults(params any) {
	for _, s := range Settings(params) {
		if err := setValue(params, s, s.Default); err != nil {
			panic(fmt.Sprintf("pipeline: default of %s: %v", s.Name, err)) // a tag typo: a bug
		}
	}
	if o, ok := params.(interface{ overrideDefaults() }); ok {
		o.overrideDefaults()
	}
}

// Set parses value into the setting called name (or an alias). The error says what is
// wrong with the value, without the setting's name: callers add "--name" or the file,
// line and key.
func Set(params any, name, value string) error {
	s, ok := Lookup(params, name)
	if !ok {
		return fmt.Errorf("no setting %q", name)
	}
	return setValue(params, s, value)
}

// Get is a setting's value in the form Set takes.
func Get(params any, name string) string {
	s, ok := Lookup(params, name)
	if !ok {
		return ""
	}
	return fmt.Sprint(reflect.ValueOf(params).Elem().FieldByIndex(s.index).Interface())
}

func setValue(params any, s Setting, value string) error {
	v := reflect.ValueOf(params).Elem().FieldByIndex(s.index)
	value = strings.TrimSpace(value)
	switch v.Kind() {
	case reflect.String:
		v.SetString(value)
	case reflect.Bool:
		if value == "" {
			v.SetBool(false)
			return nil
		}
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("%q is not true or false", value)
		}
		v.SetBool(b)
	case reflect.Int:
		if value == "" {
			v.SetInt(0)
			return nil
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", value)
		}
		v.SetInt(n)
	case reflect.Uint64:
		if value == "" {
			v.SetUint(0)
			return nil
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer", value)
		}
		v.SetUint(n)
	case reflect.Float64:
		if value == "" {
			v.SetFloat(0)
			return nil
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%q is not a number", value)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("setting %s has unsupported type %s", s.Name, v.Type())
	}
	return nil
}

// SettingError is a bad setting value found by a Params' Validate: Key names the
// setting, so the CLI can say "--key" and synth.yaml its file, line and section.
type SettingError struct {
	Key string
	Msg string
}

// Error reads "key msg" ("batch 0: want 1 to 1024", "model is required"); a problem
// of no single setting has no key.
func (e *SettingError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + " " + e.Msg
}

func badf(key, format string, args ...any) error {
	return &SettingError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// AsSettingError unwraps a SettingError.
func AsSettingError(err error) (*SettingError, bool) {
	var se *SettingError
	ok := errors.As(err, &se)
	return se, ok
}

// Suggest returns the known name closest to name by edit distance, or "" when none is
// close enough to be a typo (at most a third of the name's letters differ).
func Suggest(name string, known []string) string {
	best, bestD := "", len(name)/3+1
	sorted := append([]string{}, known...)
	sort.Strings(sorted)
	for _, k := range sorted {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
