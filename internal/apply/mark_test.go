package apply

import "testing"

func TestEntryMark(t *testing.T) {
	base := EntryMark(7, "leader-1-ab12cd34-7", []byte("entry"))
	if base.IsZero() {
		t.Fatal("mark is zero")
	}
	if again := EntryMark(7, "leader-1-ab12cd34-7", []byte("entry")); again != base {
		t.Fatalf("same entry, different marks: %x, %x", base, again)
	}
	for name, m := range map[string]Mark{
		"other seq":     EntryMark(8, "leader-1-ab12cd34-7", []byte("entry")),
		"other id":      EntryMark(7, "leader-1-ffffffff-7", []byte("entry")),
		"no id":         EntryMark(7, "", []byte("entry")),
		"other data":    EntryMark(7, "leader-1-ab12cd34-7", []byte("entrz")),
		"id/data split": EntryMark(7, "leader-1-ab12cd34-7e", []byte("ntry")),
	} {
		if m == base {
			t.Errorf("%s: same mark as the base entry", name)
		}
	}
}
