// Package filelock keeps two processes from writing one output at once. A Lock is a file
// (e.g. "captioned.jsonl.lock" beside the output) held with flock(2) and holding the
// owner's process id:
//
//	l, err := filelock.Acquire("out/captioned.jsonl.lock")
//	if errors.Is(err, filelock.ErrLocked) { ... } // the message names the holder's pid
//	defer l.Release()
//
// The kernel drops a flock when its holder exits, however it exits, so a lock left by a
// process killed with SIGKILL is stale by construction: the next Acquire takes it without
// any cleanup. Locks are advisory (only Acquire honours them) and exclusive; a second
// Acquire of the same file fails also within one process.
//
// filelock imports the standard library only.
package filelock
