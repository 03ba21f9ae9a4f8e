package node

import "testing"

func TestKeySeqs(t *testing.T) {
	k := newKeySeqs()
	a, b := []byte("a"), []byte("b")
	if got := k.get(a); got != 0 {
		t.Fatalf("empty: get = %d", got)
	}
	if prev := k.set(a, 5); prev != 0 {
		t.Fatalf("first set: prev %d", prev)
	}
	prev := k.set(a, 7)
	if prev != 5 || k.get(a) != 7 {
		t.Fatalf("second set: prev %d, get %d", prev, k.get(a))
	}
	k.restore(a, 7, prev) // 7 was never sent
	if k.get(a) != 5 {
		t.Fatalf("after restore: %d, want 5", k.get(a))
	}
	k.applied(a, 4) // an older write applied: 5 is still in flight
	if k.get(a) != 5 {
		t.Fatalf("after an older apply: %d, want 5", k.get(a))
	}
	k.applied(a, 5)
	if k.get(a) != 0 {
		t.Fatalf("after its apply: %d, want 0", k.get(a))
	}
	k.set(b, 9)
	k.restore(b, 9, 0)
	if k.get(b) != 0 {
		t.Fatalf("restore to none: %d", k.get(b))
	}
	k.set(a, 11)
	k.set(b, 12)
	k.clear()
	if k.get(a) != 0 || k.get(b) != 0 {
		t.Fatal("clear kept keys")
	}
}
