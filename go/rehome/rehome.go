// SPDX-License-Identifier: MIT

// The cgo layer: layouts, targets (a memory file or a paused VMM's
// /proc/PID/mem), patching a request, reading and waiting for the ack.
// Every C call that can fail fills a struct rh_error that becomes *Error.

package rehome

/*
#cgo pkg-config: rehome
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <rehome/ack.h>
#include <rehome/layout.h>
#include <rehome/patch.h>
#include <rehome/request.h>

// Parse @json into a request allocated here (free() it); NULL with @err filled on failure.
static struct rh_request *go_request_new(const char *json, size_t len, int *ret_r, struct rh_error *err)
{
	struct rh_request *req = calloc(1, sizeof(*req));

	if (!req) {
		*ret_r = rh_error_set(err, -ENOMEM, "request: out of memory");
		return NULL;
	}
	*ret_r = rh_request_from_json(json, len, req, err);
	if (*ret_r < 0) {
		free(req);
		return NULL;
	}
	return req;
}

static void go_request_set_nonce(struct rh_request *req, uint64_t nonce) { req->nonce = nonce; }
static uint64_t go_request_nonce(const struct rh_request *req) { return req->nonce; }

// The ack as JSON (malloc'd), or NULL.
static char *go_ack_json(const struct rh_ack *ack) { return rh_ack_to_json(ack, 0); }

struct go_wait_out {
	int channel;
	int applied;
	int have_record;
	int have_line;
	char *ack_json;             // malloc'd when have_record
	char stage[16], mac[18], ip[64], error[RH_ACK_ERROR_MAX];
	uint64_t waited_ns;
	int saw_read, saw_stale, saw_invalid;
	unsigned foreign_lines;
	const char *seen;
};

static int go_ack_wait(struct rh_target *target, uint64_t gpa, int udp_fd, uint64_t nonce, uint32_t seq,
		       int timeout_ms, unsigned interval_us, struct go_wait_out *out, struct rh_error *err)
{
	struct rh_ack_wait_opts o = {
		.target = target, .gpa = gpa, .udp_fd = udp_fd, .nonce = nonce, .seq = seq,
		.timeout_ms = timeout_ms, .interval_us = interval_us,
	};
	struct rh_ack_wait_result res;
	int r;

	memset(&res, 0, sizeof(res));
	r = rh_ack_wait(&o, &res, err);
	memset(out, 0, sizeof(*out));
	out->channel = res.channel;
	out->applied = res.applied;
	out->have_record = res.have_record;
	out->have_line = res.have_line;
	if (res.have_record)
		out->ack_json = rh_ack_to_json(&res.ack, 0);
	if (res.have_line) {
		memcpy(out->stage, res.line.stage, sizeof(out->stage));
		memcpy(out->mac, res.line.mac, sizeof(out->mac));
		memcpy(out->ip, res.line.ip, sizeof(out->ip));
		memcpy(out->error, res.line.error, sizeof(out->error));
	}
	out->waited_ns = (res.t_final_ns ? res.t_final_ns : res.t_start_ns) - res.t_start_ns;
	out->saw_read = res.saw_read;
	out->saw_stale = res.saw_stale;
	out->saw_invalid = res.saw_invalid;
	out->foreign_lines = res.foreign_lines;
	out->seen = rh_ack_wait_seen(&res);
	return r;
}

static int go_ack_read(struct rh_target *target, uint64_t gpa, char **ret_json, struct rh_error *err)
{
	struct rh_ack ack;
	int r = rh_mailbox_ack_read(target, gpa, &ack, err);

	if (r < 0)
		return r;
	*ret_json = rh_ack_to_json(&ack, 0);
	return *ret_json ? 0 : rh_error_set(err, -ENOMEM, "ack: out of memory");
}
*/
import "C"

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// TokenLen is the length of an agent's token (the 32 hex digits of its armed line).
const TokenLen = C.RH_TOKEN_LEN

// GPANone is "no hint" for Target.Locate.
const GPANone = ^uint64(0)

// Error is a librehome failure: Op names the Go call, Msg is the library's
// rh_error text (with the context of every layer), Code its errno.
type Error struct {
	Op   string
	Code syscall.Errno
	Msg  string
}

func (e *Error) Error() string { return e.Op + ": " + e.Msg }

// Unwrap makes errors.Is(err, syscall.ETIMEDOUT) and the like work.
func (e *Error) Unwrap() error { return e.Code }

// newError turns a negative return and the filled struct rh_error into *Error.
func newError(op string, r C.int, cerr *C.struct_rh_error) error {
	code := syscall.Errno(-r)
	msg := C.GoString(&cerr.msg[0])
	if msg == "" {
		msg = code.Error()
	}
	return &Error{Op: op, Code: code, Msg: msg}
}

// Token is an agent's 16-byte token.
type Token [TokenLen]byte

// ParseToken parses the 32 hex digits of the agent's armed line.
func ParseToken(s string) (Token, error) {
	var t Token
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != TokenLen {
		return t, &Error{Op: "parse token", Code: syscall.EINVAL, Msg: fmt.Sprintf("expected %d hex digits, got %q", 2*TokenLen, s)}
	}
	copy(t[:], b)
	return t, nil
}

func (t Token) String() string { return hex.EncodeToString(t[:]) }

func (t *Token) c() *C.uint8_t {
	if t == nil {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&t[0]))
}

// Layout maps guest-physical addresses to memory file offsets (docs/LAYOUTS.md).
type Layout struct {
	p *C.struct_rh_layout
}

// ParseLayout parses a layout spec as --layout takes it: "flat",
// "qemu-q35:256M", "firecracker:512M", "cloud-hypervisor:DIR", "regions:...".
func ParseLayout(spec string) (*Layout, error) {
	var cerr C.struct_rh_error
	var p *C.struct_rh_layout
	cs := C.CString(spec)
	defer C.free(unsafe.Pointer(cs))
	if r := C.rh_layout_parse(cs, &p, &cerr); r < 0 {
		return nil, newError("parse layout", r, &cerr)
	}
	return &Layout{p: p}, nil
}

// Close frees the layout; close every Target using it first.
func (l *Layout) Close() {
	if l != nil && l.p != nil {
		C.rh_layout_free(l.p)
		l.p = nil
	}
}

// Target is guest memory: a memory file, or a paused VMM process.
type Target struct {
	p      *C.struct_rh_target
	layout *Layout // kept: the target points into it
	what   string
}

// OpenFile opens a memory file laid out by layout (rehome ... --file PATH).
func OpenFile(path string, layout *Layout, writable bool) (*Target, error) {
	var cerr C.struct_rh_error
	var p *C.struct_rh_target
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	if r := C.rh_target_open_file(cs, layout.p, C.bool(writable), &p, &cerr); r < 0 {
		return nil, newError("open "+path, r, &cerr)
	}
	return &Target{p: p, layout: layout, what: path}, nil
}

// OpenPID opens the guest memory of a paused VMM process through
// /proc/PID/mem, at its mapping of memFile (rehome ... --pid PID --mem-file PATH).
func OpenPID(pid int, memFile string, layout *Layout, writable bool) (*Target, error) {
	var cerr C.struct_rh_error
	var p *C.struct_rh_target
	cs := C.CString(memFile)
	defer C.free(unsafe.Pointer(cs))
	if r := C.rh_target_open_pid(C.pid_t(pid), cs, layout.p, C.bool(writable), &p, &cerr); r < 0 {
		return nil, newError(fmt.Sprintf("open pid %d", pid), r, &cerr)
	}
	return &Target{p: p, layout: layout, what: fmt.Sprintf("pid %d", pid)}, nil
}

// Close closes the target.
func (t *Target) Close() error {
	if t != nil && t.p != nil {
		C.rh_target_free(t.p)
		t.p = nil
	}
	return nil
}

func (t *Target) open(op string) error {
	if t == nil || t.p == nil {
		return &Error{Op: op, Code: syscall.EBADF, Msg: "target is closed"}
	}
	return nil
}

// Locate finds the mailbox (rehome locate): with hint (the gpa of the armed
// line) one page is read; with GPANone, or scan and a hint that does not
// verify, guest RAM is scanned. token nil accepts any token.
func (t *Target) Locate(hint uint64, token *Token, scan bool) (uint64, error) {
	var cerr C.struct_rh_error
	var gpa C.uint64_t
	if err := t.open("locate"); err != nil {
		return 0, err
	}
	if r := C.rh_mailbox_locate(t.p, C.uint64_t(hint), token.c(), C.bool(scan), &gpa, &cerr); r < 0 {
		return 0, newError("locate", r, &cerr)
	}
	return uint64(gpa), nil
}

// Patched is what Patch wrote: the seq and nonce to wait for.
type Patched struct {
	GPA   uint64
	Seq   uint32
	Nonce uint64
}

// Patch writes req into the mailbox at gpa (rehome patch), after checking
// the page's arm header, its recorded gpa and token (nil: any). A request
// without a nonce gets a random one here, so the caller always knows what
// to wait for; a request without a seq gets one more than the page's.
func (t *Target) Patch(gpa uint64, token *Token, req *Request) (Patched, error) {
	var cerr C.struct_rh_error
	var seq C.uint32_t
	if err := t.open("patch"); err != nil {
		return Patched{}, err
	}
	creq, err := req.c()
	if err != nil {
		return Patched{}, err
	}
	defer C.free(unsafe.Pointer(creq))
	if C.go_request_nonce(creq) == 0 {
		n, err := randomNonce()
		if err != nil {
			return Patched{}, &Error{Op: "patch", Code: syscall.EIO, Msg: "random nonce: " + err.Error()}
		}
		C.go_request_set_nonce(creq, C.uint64_t(n))
	}
	if r := C.rh_mailbox_patch(t.p, C.uint64_t(gpa), token.c(), creq, &seq, &cerr); r < 0 {
		return Patched{}, newError(fmt.Sprintf("patch %s", t.what), r, &cerr)
	}
	return Patched{GPA: gpa, Seq: uint32(seq), Nonce: uint64(C.go_request_nonce(creq))}, nil
}

// ReadAck reads the ack record in the mailbox at gpa, whatever request it
// answers (rehome inspect shows the same). ENODATA: no ack yet.
func (t *Target) ReadAck(gpa uint64) (*Ack, error) {
	var cerr C.struct_rh_error
	var s *C.char
	if err := t.open("read ack"); err != nil {
		return nil, err
	}
	if r := C.go_ack_read(t.p, C.uint64_t(gpa), &s, &cerr); r < 0 {
		return nil, newError("read ack", r, &cerr)
	}
	defer C.free(unsafe.Pointer(s))
	return parseAck(C.GoString(s))
}

// WaitOptions say which request to wait for and where (rehome wait-ack).
type WaitOptions struct {
	Target   *Target       // the mailbox channel (nil: none)
	GPA      uint64        // the mailbox page
	UDP      *net.UDPConn  // the UDP channel: where --ack sends the agent's line (nil: none)
	Nonce    uint64        // the request's nonce (Patched.Nonce), required
	Seq      uint32        // the request's seq (0: do not check)
	Timeout  time.Duration // > 0
	Interval time.Duration // mailbox poll interval (0: the library's 250 us)
}

// AckLine is the agent's final UDP ack line.
type AckLine struct {
	Stage, MAC, IP, Error string
}

// AckResult is the final answer to a request, and what was seen on the way.
type AckResult struct {
	Channel    string   // "mailbox" or "udp": where the final answer showed first
	Applied    bool     // the answer is "applied"
	Ack        *Ack     // the ack record, when one with our nonce and seq was read
	Line       *AckLine // the UDP line, when one decided
	Waited     time.Duration
	SawRead    bool   // the agent read the request
	SawStale   bool   // an ack of another request was in the page
	SawInvalid bool   // a record failed its checks
	Seen       string // the library's phrase for what was seen (set on a timeout too)
}

// WaitAck waits for the final answer to one request on every channel
// given (rh_ack_wait, include/rehome/ack.h). On a timeout it returns the
// result (what was seen) and an *Error with Code ETIMEDOUT.
func WaitAck(o WaitOptions) (*AckResult, error) {
	var cerr C.struct_rh_error
	var out C.struct_go_wait_out
	var r C.int
	var target *C.struct_rh_target
	if o.Target != nil {
		if err := o.Target.open("wait ack"); err != nil {
			return nil, err
		}
		target = o.Target.p
	}
	timeout := int(o.Timeout / time.Millisecond)
	if o.Timeout > 0 && timeout == 0 {
		timeout = 1
	}
	wait := func(fd int) {
		r = C.go_ack_wait(target, C.uint64_t(o.GPA), C.int(fd), C.uint64_t(o.Nonce), C.uint32_t(o.Seq),
			C.int(timeout), C.unsigned(o.Interval/time.Microsecond), &out, &cerr)
	}
	if o.UDP != nil {
		raw, err := o.UDP.SyscallConn()
		if err != nil {
			return nil, &Error{Op: "wait ack", Code: syscall.EBADF, Msg: err.Error()}
		}
		// Go's sockets are non-blocking already, as rh_ack_wait wants.
		if err := raw.Control(func(fd uintptr) { wait(int(fd)) }); err != nil {
			return nil, &Error{Op: "wait ack", Code: syscall.EBADF, Msg: err.Error()}
		}
	} else {
		wait(-1)
	}
	defer C.free(unsafe.Pointer(out.ack_json))
	res := &AckResult{
		Applied:    out.applied != 0,
		Waited:     time.Duration(out.waited_ns),
		SawRead:    out.saw_read != 0,
		SawStale:   out.saw_stale != 0,
		SawInvalid: out.saw_invalid != 0,
		Seen:       C.GoString(out.seen),
	}
	switch out.channel {
	case C.RH_ACK_CHANNEL_MAILBOX:
		res.Channel = "mailbox"
	case C.RH_ACK_CHANNEL_UDP:
		res.Channel = "udp"
	}
	if out.have_record != 0 && out.ack_json != nil {
		ack, err := parseAck(C.GoString(out.ack_json))
		if err != nil {
			return nil, err
		}
		res.Ack = ack
	}
	if out.have_line != 0 {
		res.Line = &AckLine{Stage: C.GoString(&out.stage[0]), MAC: C.GoString(&out.mac[0]),
			IP: C.GoString(&out.ip[0]), Error: C.GoString(&out.error[0])}
	}
	if r < 0 {
		return res, newError("wait ack", r, &cerr)
	}
	return res, nil
}

func randomNonce() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if n := binary.LittleEndian.Uint64(b[:]); n != 0 {
			return n, nil
		}
	}
}

// ErrNoAck is the errno of ReadAck's *Error when the page holds no ack yet:
// errors.Is(err, rehome.ErrNoAck).
var ErrNoAck = syscall.ENODATA

// Validate checks the request as the library will (addresses, prefixes, MACs, counts).
func (r *Request) Validate() error {
	p, err := r.c()
	if err != nil {
		return err
	}
	C.free(unsafe.Pointer(p))
	return nil
}

// c is the request as the library's struct (malloc'd: the caller frees it).
func (r *Request) c() (*C.struct_rh_request, error) {
	var cerr C.struct_rh_error
	var rc C.int
	if r == nil {
		return nil, &Error{Op: "request", Code: syscall.EINVAL, Msg: "no request"}
	}
	text, err := r.JSON()
	if err != nil {
		return nil, &Error{Op: "request", Code: syscall.EINVAL, Msg: err.Error()}
	}
	cs := C.CString(string(text))
	defer C.free(unsafe.Pointer(cs))
	p := C.go_request_new(cs, C.size_t(len(text)), &rc, &cerr)
	if p == nil {
		return nil, newError("request", rc, &cerr)
	}
	return p, nil
}
