// SPDX-License-Identifier: MIT

// Package rehome is the Go binding of librehome (cgo, found with
// pkg-config as "rehome"): hand a new network identity to a microVM forked
// from a snapshot, from a Go VMM manager.
//
// The calls follow the CLI verbs one for one (docs/INTEGRATION.md, "Go"):
//
//	layout, _ := rehome.ParseLayout("firecracker:512M")    // --layout
//	t, _ := rehome.OpenPID(pid, memFile, layout, true)     // --pid --mem-file
//	p, _ := t.Patch(gpa, &token, &rehome.Request{...})     // rehome patch
//	res, _ := rehome.WaitAck(rehome.WaitOptions{Target: t,  // rehome wait-ack
//		GPA: gpa, Nonce: p.Nonce, Seq: p.Seq, Timeout: 5 * time.Second})
//	ack, _ := t.ReadAck(gpa)                                // rehome inspect (ack)
//
// A Request is plain Go data; it is handed to the library as the request
// JSON of docs/REQUEST.md (rh_request_from_json), so the library validates
// it and the Go side never depends on the layout of struct rh_request.
// Errors are *Error: the library's own message (struct rh_error, every
// layer's context prefixed) and the errno, so errors.Is(err,
// syscall.ENOENT) works. Only the standard library is used.
package rehome
