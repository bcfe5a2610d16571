package workflow

import (
	"fmt"
	"slices"
	"strconv"
)

// IsPatched reports whether the instance runs the code of patch name (true) or
// the code that came before it (false), so a change can go in under running
// instances:
//
//	if ctx.IsPatched("charge-in-two-steps") {
//		// the new steps
//	} else {
//		// the old ones, for instances that already passed here
//	}
//
// The answer is true when the code reaches this point for the first time, and
// false when it re-runs history recorded before the patch existed (an old
// instance replaying). Each answer is recorded in the instance's history, so it
// never changes for the instance, in this run or any replay, until it continues
// as new (the new generation asks afresh and is patched). Names are
// case-sensitive and must not be empty.
//
// Retire a patch once no running instance took its old branch (weft replay
// tells): keep only the new branch and delete the IsPatched call. An instance
// whose history took a branch of a patch that its code no longer checks, and
// whose replay then diverges, stalls (PATCH_MISMATCH) instead of failing: it
// continues when code that has the patch is deployed again.
func (c *Context) IsPatched(name string) bool {
	e := c.e
	e.check()
	if name == "" {
		panic(fmt.Errorf("workflow %s: IsPatched needs a patch name", e.name))
	}
	if v, ok := e.patches[name]; ok {
		if e.recordedPatches[name] {
			setFlag(&e.askedPatches, name)
		}
		return v
	}
	patched := !(e.replaying && e.actionsAhead)
	if e.patches == nil {
		e.patches = map[string]bool{}
	}
	e.patches[name] = patched
	e.emit(Event{Kind: PatchRecorded, Name: name, Data: []byte(strconv.FormatBool(patched))})
	return patched
}

// recordPatch takes an answer recorded in history; the first record of a name
// stands.
func (e *Executor) recordPatch(ev Event) {
	if _, ok := e.patches[ev.Name]; ok || ev.Name == "" {
		return
	}
	if e.patches == nil {
		e.patches = map[string]bool{}
	}
	e.patches[ev.Name] = string(ev.Data) == "true"
	setFlag(&e.recordedPatches, ev.Name)
}

// unaskedPatches names the patches history records that the code has not
// asked for on this replay, sorted.
func (e *Executor) unaskedPatches() []string {
	var names []string
	for name := range e.recordedPatches {
		if !e.askedPatches[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Patches returns the generation's patch answers: recorded in history and given
// since, true for the patched branch.
func (e *Executor) Patches() map[string]bool { return e.patches }

func setFlag(m *map[string]bool, name string) {
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[name] = true
}
