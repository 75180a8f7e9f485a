package weights

import (
	"fmt"
	"math"
	"strings"
)

// DType is the element type of a stored tensor: the plain types of safetensors and torch,
// and every ggml type a GGUF file may hold (block-quantized types included).
type DType uint8

// The dtypes. Plain types have a block size of 1; quantized types store BlockSize values in
// BlockBytes bytes. Only the ggml types listed in the package doc can be converted to
// float32; the others are known so that any GGUF file can be inspected.
const (
	Invalid DType = iota
	F32
	F16
	BF16
	F64
	I64
	I32
	I16
	I8
	U64
	U32
	U16
	U8
	Bool
	Q4_0
	Q4_1
	Q5_0
	Q5_1
	Q8_0
	Q8_1
	Q2_K
	Q3_K
	Q4_K
	Q5_K
	Q6_K
	Q8_K
	IQ2_XXS
	IQ2_XS
	IQ3_XXS
	IQ1_S
	IQ4_NL
	IQ3_S
	IQ2_S
	IQ4_XS
	IQ1_M
	TQ1_0
	TQ2_0
	MXFP4
	numDTypes
)

// dtypeInfo describes one dtype. ggml is the ggml_type id (-1: none); the block layouts
// and sizes are ggml's (ggml-common.h), checked against the linked ggml in the tests.
type dtypeInfo struct {
	name   string
	st     string // safetensors name, "" when safetensors has none
	ggml   int
	block  int // values per block
	bytes  int // bytes per block
	float  bool
	quant  bool
	signed bool // integer types: signed
}

var dtypes = [numDTypes]dtypeInfo{
	Invalid: {name: "invalid", ggml: -1},
	F32:     {name: "F32", st: "F32", ggml: 0, block: 1, bytes: 4, float: true},
	F16:     {name: "F16", st: "F16", ggml: 1, block: 1, bytes: 2, float: true},
	BF16:    {name: "BF16", st: "BF16", ggml: 30, block: 1, bytes: 2, float: true},
	F64:     {name: "F64", st: "F64", ggml: 28, block: 1, bytes: 8, float: true},
	I64:     {name: "I64", st: "I64", ggml: 27, block: 1, bytes: 8, signed: true},
	I32:     {name: "I32", st: "I32", ggml: 26, block: 1, bytes: 4, signed: true},
	I16:     {name: "I16", st: "I16", ggml: 25, block: 1, bytes: 2, signed: true},
	I8:      {name: "I8", st: "I8", ggml: 24, block: 1, bytes: 1, signed: true},
	U64:     {name: "U64", st: "U64", ggml: -1, block: 1, bytes: 8},
	U32:     {name: "U32", st: "U32", ggml: -1, block: 1, bytes: 4},
	U16:     {name: "U16", st: "U16", ggml: -1, block: 1, bytes: 2},
	U8:      {name: "U8", st: "U8", ggml: -1, block: 1, bytes: 1},
	Bool:    {name: "BOOL", st: "BOOL", ggml: -1, block: 1, bytes: 1},
	Q4_0:    {name: "Q4_0", ggml: 2, block: 32, bytes: 18, float: true, quant: true},
	Q4_1:    {name: "Q4_1", ggml: 3, block: 32, bytes: 20, float: true, quant: true},
	Q5_0:    {name: "Q5_0", ggml: 6, block: 32, bytes: 22, float: true, quant: true},
	Q5_1:    {name: "Q5_1", ggml: 7, block: 32, bytes: 24, float: true, quant: true},
	Q8_0:    {name: "Q8_0", ggml: 8, block: 32, bytes: 34, float: true, quant: true},
	Q8_1:    {name: "Q8_1", ggml: 9, block: 32, bytes: 36, float: true, quant: true},
	Q2_K:    {name: "Q2_K", ggml: 10, block: 256, bytes: 84, float: true, quant: true},
	Q3_K:    {name: "Q3_K", ggml: 11, block: 256, bytes: 110, float: true, quant: true},
	Q4_K:    {name: "Q4_K", ggml: 12, block: 256, bytes: 144, float: true, quant: true},
	Q5_K:    {name: "Q5_K", ggml: 13, block: 256, bytes: 176, float: true, quant: true},
	Q6_K:    {name: "Q6_K", ggml: 14, block: 256, bytes: 210, float: true, quant: true},
	Q8_K:    {name: "Q8_K", ggml: 15, block: 256, bytes: 292, float: true, quant: true},
	IQ2_XXS: {name: "IQ2_XXS", ggml: 16, block: 256, bytes: 66, float: true, quant: true},
	IQ2_XS:  {name: "IQ2_XS", ggml: 17, block: 256, bytes: 74, float: true, quant: true},
	IQ3_XXS: {name: "IQ3_XXS", ggml: 18, block: 256, bytes: 98, float: true, quant: true},
	IQ1_S:   {name: "IQ1_S", ggml: 19, block: 256, bytes: 50, float: true, quant: true},
	IQ4_NL:  {name: "IQ4_NL", ggml: 20, block: 32, bytes: 18, float: true, quant: true},
	IQ3_S:   {name: "IQ3_S", ggml: 21, block: 256, bytes: 110, float: true, quant: true},
	IQ2_S:   {name: "IQ2_S", ggml: 22, block: 256, bytes: 82, float: true, quant: true},
	IQ4_XS:  {name: "IQ4_XS", ggml: 23, block: 256, bytes: 136, float: true, quant: true},
	IQ1_M:   {name: "IQ1_M", ggml: 29, block: 256, bytes: 56, float: true, quant: true},
	TQ1_0:   {name: "TQ1_0", ggml: 34, block: 256, bytes: 54, float: true, quant: true},
	TQ2_0:   {name: "TQ2_0", ggml: 35, block: 256, bytes: 66, float: true, quant: true},
	MXFP4:   {name: "MXFP4", ggml: 39, block: 32, bytes: 17, float: true, quant: true},
}

var byGGML = func() map[int]DType {
	m := map[int]DType{}
	for d := DType(1); d < numDTypes; d++ {
		if g := dtypes[d].ggml; g >= 0 {
			m[g] = d
		}
	}
	return m
}()

func (d DType) info() dtypeInfo {
	if d >= numDTypes {
		return dtypes[Invalid]
	}
	return dtypes[d]
}

// String is the dtype's name as safetensors and ggml spell it (F32, BF16, Q4_0, ...).
func (d DType) String() string {
	if d >= numDTypes {
		return fmt.Sprintf("DType(%d)", uint8(d))
	}
	return dtypes[d].name
}

// Valid reports whether d is one of the defined dtypes.
func (d DType) Valid() bool { return d > Invalid && d < numDTypes }

// BlockSize is the number of values per block (1 for plain types).
func (d DType) BlockSize() int { return d.info().block }

// BlockBytes is the byte size of one block (the element size for plain types).
func (d DType) BlockBytes() int { return d.info().bytes }

// IsFloat reports whether d holds real numbers: F32, F16, BF16, F64 and every quantized
// type. This is the "dtype family" Scope.Get checks.
func (d DType) IsFloat() bool { return d.info().float }

// IsInt reports whether d is an integer or boolean type.
func (d DType) IsInt() bool { return d.Valid() && !d.info().float }

// IsQuantized reports whether d is a ggml block-quantized type.
func (d DType) IsQuantized() bool { return d.info().quant }

// GGMLType is d's ggml_type id, or -1 when GGUF cannot store d (unsigned and bool types).
func (d DType) GGMLType() int { return d.info().ggml }

// DTypeFromGGML maps a ggml_type id to its DType.
func DTypeFromGGML(t int) (DType, bool) {
	d, ok := byGGML[t]
	return d, ok
}

// ParseDType accepts a dtype name in any case ("q8_0", "BF16", "bool").
func ParseDType(s string) (DType, error) {
	u := strings.ToUpper(s)
	for d := DType(1); d < numDTypes; d++ {
		if dtypes[d].name == u {
			return d, nil
		}
	}
	return Invalid, fmt.Errorf("weights: unknown dtype %q", s)
}

func dtypeFromSafetensors(s string) (DType, bool) {
	for d := DType(1); d < numDTypes; d++ {
		if dtypes[d].st != "" && dtypes[d].st == s {
			return d, true
		}
	}
	return Invalid, false
}

// ByteSize is the number of bytes n values of d take, or an error when n is not a whole
// number of blocks or the size overflows.
func (d DType) ByteSize(n int64) (int64, error) {
	in := d.info()
	if in.block == 0 {
		return 0, fmt.Errorf("invalid dtype %s", d)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative element count %d", n)
	}
	if n%int64(in.block) != 0 {
		return 0, fmt.Errorf("%d values of %s is not a whole number of %d-value blocks", n, d, in.block)
	}
	blocks := n / int64(in.block)
	if blocks > math.MaxInt64/int64(in.bytes) {
		return 0, fmt.Errorf("%d values of %s overflow", n, d)
	}
	return blocks * int64(in.bytes), nil
}

// numel multiplies the dims of shape, failing on negative dims or overflow.
func numel(shape []int) (int64, error) {
	n := int64(1)
	for _, s := range shape {
		if s < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if s != 0 && n > math.MaxInt64/int64(s) {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n *= int64(s)
	}
	return n, nil
}
