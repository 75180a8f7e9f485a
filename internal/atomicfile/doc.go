// Package atomicfile writes a file so that its final name holds either the old content or
// the complete new content, never a part: the data goes to a temporary file in the same
// folder (a unique name, so two writers never share one), which is synced, given its
// mode, renamed over the final name, and the folder is synced so the rename survives a
// crash. On any error the temporary file is removed and the final name is untouched.
//
//	err := atomicfile.WriteFile("out/report.json", data)
//	err := atomicfile.Write("emb.npy", func(w io.Writer) error { ... })
//
// A process killed between create and rename can leave a hidden temporary file
// (".NAME.tmp-*") beside the final name, never a partial file under it.
//
// atomicfile imports the standard library only, so every package (weights included) may
// use it.
package atomicfile
