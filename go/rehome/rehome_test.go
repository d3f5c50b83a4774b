// SPDX-License-Identifier: MIT

// The package against a real process: a child (this test binary again)
// maps a memory file MAP_PRIVATE, as a paused VMM maps its snapshot, and
// stands in for the agent; the test patches a request into the child
// through /proc/PID/mem, waits for the ack the child writes into its own
// memory, and checks the file stayed byte-identical. Then the file and UDP
// channels and the errors, with the library's text.

package rehome

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	testGPA  = 0x3ff0000
	testSize = 64 << 20
)

var testToken = Token{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

func TestMain(m *testing.M) {
	if path := os.Getenv("REHOME_GO_TEST_HOLD"); path != "" {
		os.Exit(hold(path))
	}
	os.Exit(m.Run())
}

// hold is the child: map path MAP_PRIVATE, say "ready", answer the first
// request that appears in its own copy of the mailbox page, say "acked",
// and keep the mapping until stdin closes.
func hold(path string) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, testSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmap:", err)
		return 1
	}
	fmt.Println("ready")
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	page := mem[testGPA : testGPA+mailboxSize]
	for {
		select {
		case <-done:
			return 0
		case <-time.After(time.Millisecond):
		}
		if answer(page, ackApplied, appliedMAC|appliedAddrs|appliedRoutes, "") {
			fmt.Println("acked")
			<-done
			return 0
		}
	}
}

// memFile creates a sparse memory file with an armed mailbox page at testGPA.
func memFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mem")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(testSize); err != nil {
		t.Fatal(err)
	}
	page := make([]byte, mailboxSize)
	armPage(page, testGPA, testToken, capSignalPoll|capUDPAck)
	if _, err := f.WriteAt(page, testGPA); err != nil {
		t.Fatal(err)
	}
	return path
}

func testRequest() *Request {
	return &Request{
		Interfaces: []Interface{{Name: "eth0", MAC: "02:00:00:00:00:05"}},
		Addresses:  []Address{{Address: "10.0.0.5/24"}},
		Routes:     []Route{{Destination: "0.0.0.0/0", Gateway: "10.0.0.1"}},
		Hostname:   "c5",
	}
}

// libError checks err is an *Error with code and a message containing text.
func libError(t *testing.T, err error, code syscall.Errno, text string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error with %v, got %T %v", code, err, err)
	}
	if !errors.Is(err, code) || !strings.Contains(e.Msg, text) {
		t.Fatalf("want %v and %q, got %v (%q)", code, text, e.Code, e.Error())
	}
}

func TestPatchProcessAndWaitAck(t *testing.T) {
	path := memFile(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "REHOME_GO_TEST_HOLD="+path)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); child.Wait() }()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("child did not map the file: %q", lines.Text())
	}

	layout, err := ParseLayout("flat")
	if err != nil {
		t.Fatal(err)
	}
	defer layout.Close()
	target, err := OpenPID(child.Process.Pid, path, layout, true)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()

	gpa, err := target.Locate(testGPA, &testToken, false)
	if err != nil || gpa != testGPA {
		t.Fatalf("locate: %#x, %v", gpa, err)
	}
	p, err := target.Patch(gpa, &testToken, testRequest())
	if err != nil {
		t.Fatal(err)
	}
	if p.Seq != 1 || p.Nonce == 0 || p.GPA != testGPA {
		t.Fatalf("patched %+v: want seq 1 and a random nonce", p)
	}
	res, err := WaitAck(WaitOptions{Target: target, GPA: gpa, Nonce: p.Nonce, Seq: p.Seq, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Applied || res.Channel != "mailbox" || res.Ack == nil {
		t.Fatalf("ack result %+v", res)
	}
	a := res.Ack
	if a.Seq != 1 || a.Nonce != p.Nonce || a.Status != "applied" || a.Signal != "poll" ||
		strings.Join(a.AppliedNames, ",") != "mac,addrs,routes" || a.TAckNs != 4000 {
		t.Fatalf("ack %+v", a)
	}
	if !lines.Scan() || lines.Text() != "acked" {
		t.Fatalf("child did not ack: %q", lines.Text())
	}
	again, err := target.ReadAck(gpa)
	if err != nil || !reflect.DeepEqual(again, a) {
		t.Fatalf("read ack %+v, %v; waited for %+v", again, err, a)
	}

	// An ack for another nonce is not ours: a timeout, saying what was seen.
	res, err = WaitAck(WaitOptions{Target: target, GPA: gpa, Nonce: p.Nonce + 1, Timeout: 100 * time.Millisecond})
	libError(t, err, syscall.ETIMEDOUT, "")
	if res == nil || !res.SawStale || !strings.HasPrefix(res.Seen, "only an ack for another request") {
		t.Fatalf("timeout result %+v", res)
	}

	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("patching the MAP_PRIVATE process changed the memory file")
	}
}

func TestFileAndUDPAck(t *testing.T) {
	path := memFile(t)
	layout, err := ParseLayout("flat")
	if err != nil {
		t.Fatal(err)
	}
	defer layout.Close()
	target, err := OpenFile(path, layout, true)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if _, err := target.ReadAck(testGPA); !errors.Is(err, ErrNoAck) {
		t.Fatalf("read ack before any: %v", err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := testRequest()
	req.Ack = conn.LocalAddr().String()
	req.Nonce = 0xc0ffee
	p, err := target.Patch(testGPA, nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if p.Seq != 1 || p.Nonce != 0xc0ffee {
		t.Fatalf("patched %+v", p)
	}
	// The agent's UDP line, from a stand-in: a foreign line first, then ours.
	go func() {
		out, err := net.Dial("udp", conn.LocalAddr().String())
		if err != nil {
			return
		}
		defer out.Close()
		time.Sleep(20 * time.Millisecond)
		fmt.Fprintf(out, "stage=applied nonce=%x seq=1 mac=02:00:00:00:00:05 ip=10.0.0.5/24", p.Nonce+1)
		fmt.Fprintf(out, "stage=applied nonce=%x seq=1 mac=02:00:00:00:00:05 ip=10.0.0.5/24", p.Nonce)
	}()
	res, err := WaitAck(WaitOptions{Target: target, GPA: testGPA, UDP: conn, Nonce: p.Nonce, Seq: p.Seq,
		Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Applied || res.Channel != "udp" || res.Line == nil || res.Line.Stage != "applied" ||
		res.Line.MAC != "02:00:00:00:00:05" || res.Line.IP != "10.0.0.5/24" || res.Ack != nil {
		t.Fatalf("udp result %+v line %+v", res, res.Line)
	}

	// A failed ack in the file: final, not applied, the agent's text.
	page := make([]byte, mailboxSize)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(page, testGPA); err != nil {
		t.Fatal(err)
	}
	if !answer(page, ackFailed, appliedMAC, "route add: Network is unreachable") {
		t.Fatal("no request in the patched page")
	}
	if _, err := f.WriteAt(page, testGPA); err != nil {
		t.Fatal(err)
	}
	res, err = WaitAck(WaitOptions{Target: target, GPA: testGPA, Nonce: p.Nonce, Seq: p.Seq, Timeout: time.Second})
	if err != nil || res.Applied || res.Ack == nil || res.Ack.Status != "failed" ||
		res.Ack.Error != "route add: Network is unreachable" {
		t.Fatalf("failed ack: %+v %v", res, err)
	}
}

func TestErrorsCarryTheLibraryText(t *testing.T) {
	path := memFile(t)
	layout, err := ParseLayout("flat")
	if err != nil {
		t.Fatal(err)
	}
	defer layout.Close()

	_, err = ParseLayout("qemu-q35:")
	libError(t, err, syscall.EINVAL, "")
	_, err = OpenPID(0x7ffffff0, path, layout, true)
	libError(t, err, syscall.ESRCH, "")
	_, err = OpenFile(filepath.Join(t.TempDir(), "absent"), layout, false)
	libError(t, err, syscall.ENOENT, "absent")

	bad := testRequest()
	bad.Interfaces[0].MAC = "01:00:00:00:00:01"
	libError(t, bad.Validate(), syscall.EINVAL, "interface 0: MAC 01:00:00:00:00:01 is not unicast")
	bad = testRequest()
	bad.Addresses[0].Address = "10.0.0.5/33"
	libError(t, bad.Validate(), syscall.EINVAL, "10.0.0.5/33")

	target, err := OpenFile(path, layout, true)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	other := testToken
	other[0] ^= 1
	_, err = target.Patch(testGPA, &other, testRequest())
	libError(t, err, syscall.ENOENT, "token")
	_, err = target.Patch(0x1000, nil, testRequest())
	libError(t, err, syscall.ENOENT, "0x1000")
	_, err = WaitAck(WaitOptions{Target: target, GPA: testGPA, Timeout: time.Second})
	libError(t, err, syscall.EINVAL, "nonce")
	if tok, err := ParseToken(testToken.String()); err != nil || tok != testToken {
		t.Fatalf("token round trip: %v %v", tok, err)
	}
	_, err = ParseToken("xyz")
	libError(t, err, syscall.EINVAL, "32 hex digits")
}
