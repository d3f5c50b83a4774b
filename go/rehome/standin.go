// SPDX-License-Identifier: MIT

// What the guest side does to a mailbox page, for this package's tests
// (cgo is not allowed in _test.go files): arm a page as rehome-agent does
// at boot, and answer the request in a page with an ack record, as the
// agent does after applying it. Unexported: a VMM manager never needs them.

package rehome

/*
#include <stdlib.h>
#include <string.h>
#include <rehome/mailbox.h>

static void go_arm_page(uint8_t *page, uint64_t gpa, const uint8_t *token, uint32_t caps)
{
	struct rh_arm arm;

	memset(&arm, 0, sizeof(arm));
	arm.arm_generation = 1;
	arm.agent_version = 0x000100;
	arm.caps = caps;
	arm.gpa = gpa;
	memcpy(arm.token, token, RH_TOKEN_LEN);
	rh_mailbox_arm_write(page, &arm);
}

// 1 and the ack written when the page holds a request, 0 when it holds none yet.
static int go_answer(uint8_t *page, uint32_t status, uint32_t applied, const char *error)
{
	struct rh_request req;
	struct rh_ack ack;
	uint32_t seq;
	uint64_t nonce;

	if (rh_mailbox_read_request(page, &req, &seq, &nonce, NULL) < 0 || seq == 0)
		return 0;
	memset(&ack, 0, sizeof(ack));
	ack.seq = seq;
	ack.nonce = nonce;
	ack.status = status;
	ack.signal = RH_SIGNAL_POLL;
	ack.applied = applied;
	ack.t_signal_ns = 1000;
	ack.t_read_ns = 2000;
	ack.t_applied_ns = 3000;
	ack.t_ack_ns = 4000;
	strncpy(ack.error, error, sizeof(ack.error) - 1);
	rh_mailbox_write_ack(page, &ack);
	return 1;
}
*/
import "C"

import "unsafe"

const mailboxSize = C.RH_MAILBOX_SIZE

const (
	ackApplied = C.RH_ACK_APPLIED
	ackFailed  = C.RH_ACK_FAILED

	appliedMAC    = C.RH_APPLIED_MAC
	appliedAddrs  = C.RH_APPLIED_ADDRS
	appliedRoutes = C.RH_APPLIED_ROUTES

	capSignalPoll = C.RH_CAP_SIGNAL_POLL
	capUDPAck     = C.RH_CAP_UDP_ACK
)

// armPage writes an armed mailbox header into page (mailboxSize bytes).
func armPage(page []byte, gpa uint64, token Token, caps uint32) {
	C.go_arm_page((*C.uint8_t)(unsafe.Pointer(&page[0])), C.uint64_t(gpa), (*C.uint8_t)(unsafe.Pointer(&token[0])),
		C.uint32_t(caps))
}

// answer acks the request in page (which may be mmap'd memory) if there is one.
func answer(page []byte, status, applied uint32, errText string) bool {
	cs := C.CString(errText)
	defer C.free(unsafe.Pointer(cs))
	return C.go_answer((*C.uint8_t)(unsafe.Pointer(&page[0])), C.uint32_t(status), C.uint32_t(applied), cs) == 1
}
