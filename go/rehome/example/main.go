// SPDX-License-Identifier: MIT

// Command example hands a new identity to a paused VMM (or a memory file)
// with the Go package, the way `rehome patch` + `rehome wait-ack` do:
//
//	example -pid 4242 -mem-file /srv/tpl.mem -layout firecracker:512M \
//	        -gpa 0x9dee000 -token 00112233445566778899aabbccddeeff \
//	        -ip 10.0.0.5/24 -mac 02:00:0a:00:00:05 -gateway 10.0.0.1 [-timeout 10s]
//
// It locates and patches the mailbox, prints the seq and nonce, then (after
// the caller resumed the VMM, or with -no-wait) waits for the ack and
// prints it as JSON. Exit status: 0 applied, 1 failure, 2 usage, 3 timeout.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"rehome.local/go/rehome"
)

func main() {
	pid := flag.Int("pid", 0, "the paused VMM process")
	memFile := flag.String("mem-file", "", "the memory file it mapped (with -pid)")
	file := flag.String("file", "", "a memory file (instead of -pid)")
	layoutSpec := flag.String("layout", "flat", "gpa -> file offset, as rehome --layout")
	gpaArg := flag.String("gpa", "", "the mailbox's guest-physical address (from the armed line)")
	tokenArg := flag.String("token", "", "the agent's token (32 hex digits; empty: any)")
	ip := flag.String("ip", "", "new address ADDR/PREFIX")
	mac := flag.String("mac", "", "new MAC")
	gateway := flag.String("gateway", "", "default route via")
	iface := flag.String("iface", "eth0", "interface to change")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to wait for the ack")
	noWait := flag.Bool("no-wait", false, "patch only")
	flag.Parse()

	if (*pid == 0) == (*file == "") || (*pid != 0 && *memFile == "") || *gpaArg == "" || *ip == "" {
		fmt.Fprintln(os.Stderr, "example: need -gpa, -ip and either -file or -pid with -mem-file")
		flag.Usage()
		os.Exit(2)
	}
	gpa, err := strconv.ParseUint(*gpaArg, 0, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "example: -gpa: %v\n", err)
		os.Exit(2)
	}
	var token *rehome.Token
	if *tokenArg != "" {
		t, err := rehome.ParseToken(*tokenArg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "example: -token: %v\n", err)
			os.Exit(2)
		}
		token = &t
	}

	req := &rehome.Request{
		Interfaces: []rehome.Interface{{Name: *iface, MAC: *mac}},
		Addresses:  []rehome.Address{{Address: *ip}},
	}
	if *gateway != "" {
		req.Routes = []rehome.Route{{Destination: "0.0.0.0/0", Gateway: *gateway}}
	}

	layout, err := rehome.ParseLayout(*layoutSpec)
	if err != nil {
		fail(err)
	}
	defer layout.Close()
	var target *rehome.Target
	if *pid != 0 {
		target, err = rehome.OpenPID(*pid, *memFile, layout, true)
	} else {
		target, err = rehome.OpenFile(*file, layout, true)
	}
	if err != nil {
		fail(err)
	}
	defer target.Close()

	if gpa, err = target.Locate(gpa, token, false); err != nil {
		fail(err)
	}
	p, err := target.Patch(gpa, token, req)
	if err != nil {
		fail(err)
	}
	fmt.Printf("patched gpa=%#x seq=%d nonce=%016x\n", p.GPA, p.Seq, p.Nonce)
	if *noWait {
		return
	}
	res, err := rehome.WaitAck(rehome.WaitOptions{Target: target, GPA: gpa, Nonce: p.Nonce, Seq: p.Seq, Timeout: *timeout})
	if errors.Is(err, syscall.ETIMEDOUT) {
		fmt.Fprintf(os.Stderr, "example: %v\n", err)
		os.Exit(3)
	}
	if err != nil {
		fail(err)
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(out))
	if !res.Applied {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "example: %v\n", err)
	os.Exit(1)
}
