// Package modellock writes and verifies models.lock files: the path, size and SHA-256 of
// every model file, so that weights copied across an air gap (or any slow, lossy
// transfer) can be checked before a long run uses them.
//
// The format is text, one file a line, sorted by path, after '#' comment lines:
//
//	# synth models.lock ...
//	<sha256 hex>  <size in bytes>  <path>
//
// The fields are separated by exactly two spaces, so a path may hold spaces (not line
// breaks). Relative paths are relative to the folder holding the lock file: make the
// lock in the folder it will live in (`synth models lock models/ > models.lock`) and
// copy that folder across as a whole.
//
// Make hashes every regular file under the given files and folders (a symlink to a file
// counts as that file, as in a Hugging Face cache snapshot; symlinked folders are not
// followed). Lock.Check verifies every entry and reports what is missing or differs;
// Lock.Uncovered finds files of a model path that the lock does not list, so that a
// pipeline can refuse models the lock says nothing about.
//
// The SHA-256 helper here is a stand-in until synth has one shared file-hashing helper.
//
// modellock imports only the standard library.
package modellock
