// Package embcache is an on-disk cache of embedding vectors, so that a second evaluation,
// or one killed half way, recomputes nothing already embedded.
//
// A vector is found by a Key: the SHA-256 of what decides it, namely the model file's
// hash, a preprocessing id (image transform or tokenizer settings), whether it is an
// image or a text, and the SHA-256 of the image file's bytes or of the text. A changed
// model, preprocessing or input therefore misses, never returns a stale vector.
//
// On disk a cache is a folder of three files:
//
//	vectors  "SYNTHVEC" header, then float32 little-endian vectors back to back
//	index    "SYNTHIDX" header, then 52-byte records: key, offset, dim, CRC-32C of the
//	         vector, CRC-32C of the record
//	lock     held with flock (internal/filelock) while a process has the cache open; holds its pid
//
// Put writes the vector first and its index record second, so a process killed at any
// point leaves at most a torn last index record and vector bytes no record points to;
// Open drops both. A record whose vector fails its checksum on Get is a miss, and the
// next Put of that key supersedes it. Only the index lives in memory (about 100 bytes a
// vector); vectors are read back from disk on demand, so 250K vectors of 768 floats
// cost 768 MB of disk and about 25 MB of memory.
//
// A Cache is safe for concurrent use by the goroutines of one process. The folder is
// locked while open: a second Open of it, from this process or another, gets ErrLocked.
//
// embcache uses the standard library only and must not import other synth packages.
package embcache
