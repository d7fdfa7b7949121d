// Command go_sumdb is the tests' judge of the signed log's formats: it runs Go's
// golang.org/x/mod/sumdb/note and .../tlog on what p2p-energy produces, and
// produces what p2p-energy must accept. Every command reads its input on stdin
// and writes one JSON object on stdout; an error of the judged data is a field
// of that object ("" when none), never an exit status.
//
//	tree               {"leaves": [hash], "inclusion": [{index, size, proof}],
//	                    "consistency": [{old, new, proof}]} -> stored hashes,
//	                    roots, Go's own proofs and its verdict on ours
//	open VKEY          a signed note -> note.Open's text, signatures or error
//	sign SKEY          note text -> note.Sign's signed note or error
//	keygen NAME SEED   note.GenerateKey with SEED (hex, 32 bytes) as randomness
//	keys               {"verifiers": [key], "signers": [key]} -> NewVerifier and
//	                    NewSigner errors
package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusionCase struct {
	Index int64       `json:"index"`
	Size  int64       `json:"size"`
	Proof []tlog.Hash `json:"proof"`
}

type consistencyCase struct {
	Old   int64       `json:"old"`
	New   int64       `json:"new"`
	Proof []tlog.Hash `json:"proof"`
}

type verdict struct {
	Err     string      `json:"err"`
	GoProof []tlog.Hash `json:"go_proof"`
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func tree(in []byte) (interface{}, error) {
	var req struct {
		Leaves      []tlog.Hash       `json:"leaves"`
		Inclusion   []inclusionCase   `json:"inclusion"`
		Consistency []consistencyCase `json:"consistency"`
	}
	if err := json.Unmarshal(in, &req); err != nil {
		return nil, err
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x >= int64(len(stored)) {
				return nil, fmt.Errorf("stored hash %d not written yet", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	roots := []tlog.Hash{{}}
	for n, leaf := range req.Leaves {
		hashes, err := tlog.StoredHashesForRecordHash(int64(n), leaf, reader)
		if err != nil {
			return nil, err
		}
		stored = append(stored, hashes...)
		root, err := tlog.TreeHash(int64(n+1), reader)
		if err != nil {
			return nil, err
		}
		roots = append(roots, root)
	}
	var inclusion, consistency []verdict
	for _, c := range req.Inclusion {
		v := verdict{Err: "no such tree"}
		if c.Size >= 1 && c.Size <= int64(len(req.Leaves)) && c.Index >= 0 && c.Index < c.Size {
			proof, err := tlog.ProveRecord(c.Size, c.Index, reader)
			if err != nil {
				return nil, err
			}
			v = verdict{errText(tlog.CheckRecord(c.Proof, c.Size, roots[c.Size], c.Index,
				req.Leaves[c.Index])), proof}
		}
		inclusion = append(inclusion, v)
	}
	for _, c := range req.Consistency {
		v := verdict{Err: "no such trees"}
		if c.Old >= 1 && c.Old <= c.New && c.New <= int64(len(req.Leaves)) {
			proof, err := tlog.ProveTree(c.New, c.Old, reader)
			if err != nil {
				return nil, err
			}
			v = verdict{errText(tlog.CheckTree(c.Proof, c.New, roots[c.New], c.Old,
				roots[c.Old])), proof}
		}
		consistency = append(consistency, v)
	}
	var counts []int64
	for n := int64(0); n <= int64(len(req.Leaves)); n++ {
		counts = append(counts, tlog.StoredHashCount(n))
	}
	return map[string]interface{}{
		"stored": stored, "roots": roots, "stored_counts": counts,
		"inclusion": inclusion, "consistency": consistency,
	}, nil
}

type signature struct {
	Name string `json:"name"`
	Hash uint32 `json:"hash"`
}

func sigList(sigs []note.Signature) []signature {
	out := []signature{}
	for _, s := range sigs {
		out = append(out, signature{s.Name, s.Hash})
	}
	return out
}

func open(vkey string, msg []byte) (interface{}, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return map[string]string{"err": "verifier key: " + err.Error()}, nil
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return map[string]string{"err": err.Error()}, nil
	}
	return map[string]interface{}{"err": "", "text": n.Text, "sigs": sigList(n.Sigs),
		"unverified": sigList(n.UnverifiedSigs)}, nil
}

func sign(skey string, text []byte) (interface{}, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return map[string]string{"err": "signer key: " + err.Error()}, nil
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		return map[string]string{"err": err.Error()}, nil
	}
	return map[string]string{"err": "", "msg": string(msg)}, nil
}

func keygen(name, seedHex string) (interface{}, error) {
	seed, err := hex.DecodeString(seedHex)
	if err != nil || len(seed) != 32 {
		return nil, fmt.Errorf("seed must be 32 bytes of hex")
	}
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed), name)
	if err != nil {
		return nil, err
	}
	return map[string]string{"skey": skey, "vkey": vkey}, nil
}

func keys(in []byte) (interface{}, error) {
	var req struct {
		Verifiers []string `json:"verifiers"`
		Signers   []string `json:"signers"`
	}
	if err := json.Unmarshal(in, &req); err != nil {
		return nil, err
	}
	verifiers, signers := []string{}, []string{}
	for _, k := range req.Verifiers {
		_, err := note.NewVerifier(k)
		verifiers = append(verifiers, errText(err))
	}
	for _, k := range req.Signers {
		_, err := note.NewSigner(k)
		signers = append(signers, errText(err))
	}
	return map[string][]string{"verifiers": verifiers, "signers": signers}, nil
}

func run(args []string, in []byte) (interface{}, error) {
	switch {
	case len(args) == 1 && args[0] == "tree":
		return tree(in)
	case len(args) == 2 && args[0] == "open":
		return open(args[1], in)
	case len(args) == 2 && args[0] == "sign":
		return sign(args[1], in)
	case len(args) == 3 && args[0] == "keygen":
		return keygen(args[1], args[2])
	case len(args) == 1 && args[0] == "keys":
		return keys(in)
	}
	return nil, fmt.Errorf("usage: go_sumdb tree | open VKEY | sign SKEY | keygen NAME SEED | keys")
}

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err == nil {
		var out interface{}
		if out, err = run(os.Args[1:], in); err == nil {
			err = json.NewEncoder(os.Stdout).Encode(out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_sumdb:", err)
		os.Exit(2)
	}
}
