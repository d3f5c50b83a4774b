// SPDX-License-Identifier: MIT

// Requests and acks as Go values. A Request is marshalled to the request
// JSON of docs/REQUEST.md and parsed by the library (rh_request_from_json,
// in rehome.go), which validates it: the Go side never mirrors struct
// rh_request. Acks come back as the library's ack JSON.

package rehome

import (
	"encoding/json"
	"fmt"
	"strconv"
	"syscall"
)

// Interface selects an interface of the guest (by Name or MatchMAC) and what changes on it.
type Interface struct {
	Name     string `json:"name,omitempty"`
	MatchMAC string `json:"match_mac,omitempty"`
	MAC      string `json:"mac,omitempty"`
	MTU      uint32 `json:"mtu,omitempty"`
}

// Address is one address ("10.0.0.5/24", "fd00::5/64") on interface Interface (an index into Interfaces).
type Address struct {
	Interface int    `json:"interface"`
	Address   string `json:"address"`
}

// Route is one route; Destination "0.0.0.0/0" with a Gateway is the default route.
type Route struct {
	Interface   int    `json:"interface"`
	Destination string `json:"destination"`
	Gateway     string `json:"gateway,omitempty"`
	Metric      uint32 `json:"metric,omitempty"`
}

// Request is the new identity (docs/REQUEST.md). Nil booleans take the
// library's defaults (flush neighbours, announce, replace addresses: on).
// Seq 0: one more than the page's. Nonce 0: Patch picks a random one.
type Request struct {
	Interfaces       []Interface `json:"interfaces,omitempty"`
	Addresses        []Address   `json:"addresses,omitempty"`
	Routes           []Route     `json:"routes,omitempty"`
	DNS              []string    `json:"dns,omitempty"`
	Search           []string    `json:"search,omitempty"`
	Hostname         string      `json:"hostname,omitempty"`
	Ack              string      `json:"ack,omitempty"` // "HOST:PORT" or "gateway:PORT": the UDP ack line
	FlushNeighbours  *bool       `json:"flush_neighbours,omitempty"`
	Announce         *bool       `json:"announce,omitempty"`
	AckEarly         *bool       `json:"ack_early,omitempty"`
	ReplaceAddresses *bool       `json:"replace_addresses,omitempty"`
	NewMachineID     *bool       `json:"new_machine_id,omitempty"`
	Seq              uint32      `json:"seq,omitempty"`
	Nonce            uint64      `json:"-"`
}

// Bool is a convenience for the optional flags of a Request.
func Bool(v bool) *bool { return &v }

// JSON is the request document the library is given (and `rehome patch --request FILE` takes).
func (r *Request) JSON() ([]byte, error) {
	type plain Request
	doc := struct {
		*plain
		Nonce string `json:"nonce,omitempty"`
	}{plain: (*plain)(r)}
	if r.Nonce != 0 {
		doc.Nonce = fmt.Sprintf("%016x", r.Nonce)
	}
	return json.Marshal(doc)
}

// Ack is the agent's ack record (the JSON of rh_ack_to_json, as `rehome inspect --json` shows it).
type Ack struct {
	Seq           uint32   `json:"seq"`
	Nonce         uint64   `json:"-"`
	Status        string   `json:"status"` // "read", "applied", "invalid", "failed"
	Signal        string   `json:"signal"` // what woke the agent: "vmclock", "poll", ...
	Applied       uint32   `json:"applied"`
	AppliedNames  []string `json:"-"` // Applied as names ("mac", "addrs", ...), as --json prints them
	ErrorCode     int      `json:"error_code"`
	Error         string   `json:"error"`
	TSignalNs     uint64   `json:"t_signal_ns"`
	TReadNs       uint64   `json:"t_read_ns"`
	TAppliedNs    uint64   `json:"t_applied_ns"`
	TAckNs        uint64   `json:"t_ack_ns"`
	ArmGeneration uint32   `json:"arm_generation"`
}

// The RH_APPLIED_* bits by name (the same names as the CLI's "applied_names").
var appliedNames = [...]string{"mac", "mtu", "addrs", "routes", "neigh", "link-up", "announce", "hostname",
	"dns", "clock", "machine-id", "hooks"}

// AppliedBitNames turns an RH_APPLIED_* mask into names ("bitN" for bits without one).
func AppliedBitNames(mask uint32) []string {
	names := []string{}
	for i := 0; i < 32; i++ {
		if mask&(1<<uint(i)) == 0 {
			continue
		}
		if i < len(appliedNames) {
			names = append(names, appliedNames[i])
		} else {
			names = append(names, "bit"+strconv.Itoa(i))
		}
	}
	return names
}

func parseAck(text string) (*Ack, error) {
	var a Ack
	var raw struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		return nil, &Error{Op: "ack", Code: syscall.EBADMSG, Msg: err.Error()}
	}
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, &Error{Op: "ack", Code: syscall.EBADMSG, Msg: err.Error()}
	}
	n, err := strconv.ParseUint(raw.Nonce, 16, 64)
	if err != nil {
		return nil, &Error{Op: "ack", Code: syscall.EBADMSG, Msg: "nonce: " + err.Error()}
	}
	a.Nonce = n
	a.AppliedNames = AppliedBitNames(a.Applied)
	return &a, nil
}
