package ggml

// RandValues is the tests' random data, for the external test package too.
var RandValues = randValues
