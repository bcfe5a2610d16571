package actors

import "github.com/weftrt/weft/storage"

// reminderSet is an instance's stored reminders, by name. Most instances have
// one or two (a timer, a retry, an event-wait timeout), so they are a slice
// searched by name; a map of them cost a timer's activation more bytes than
// anything else. Past indexFrom reminders a map indexes the slice, so an
// instance waiting on thousands of timers does not pay a scan per timer.
type reminderSet struct {
	list  []storage.Reminder
	index map[string]int // name → position in list, once len(list) > indexFrom
}

const indexFrom = 16

func (s *reminderSet) len() int { return len(s.list) }

// all returns the reminders; the slice is valid until the next change.
func (s *reminderSet) all() []storage.Reminder { return s.list }

func (s *reminderSet) find(name string) int {
	if s.index != nil {
		if i, ok := s.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range s.list {
		if s.list[i].Name == name {
			return i
		}
	}
	return -1
}

func (s *reminderSet) get(name string) (storage.Reminder, bool) {
	if i := s.find(name); i >= 0 {
		return s.list[i], true
	}
	return storage.Reminder{}, false
}

// getTask is get of the reminder named reminderName(kind, gen, task), without
// making the name when there are no reminders: the activity results of most
// steps ask for a retry reminder that does not exist.
func (s *reminderSet) getTask(kind string, gen uint32, task int64) (storage.Reminder, bool) {
	if len(s.list) == 0 {
		return storage.Reminder{}, false
	}
	return s.get(reminderName(kind, gen, task))
}

// set adds r, or replaces the reminder of the same name.
func (s *reminderSet) set(r storage.Reminder) {
	if i := s.find(r.Name); i >= 0 {
		s.list[i] = r
		return
	}
	s.list = append(s.list, r)
	switch {
	case s.index != nil:
		s.index[r.Name] = len(s.list) - 1
	case len(s.list) > indexFrom:
		s.index = make(map[string]int, len(s.list))
		for i := range s.list {
			s.index[s.list[i].Name] = i
		}
	}
}

// remove deletes the reminder named name, if there is one.
func (s *reminderSet) remove(name string) {
	i := s.find(name)
	if i < 0 {
		return
	}
	last := len(s.list) - 1
	if i != last {
		s.list[i] = s.list[last]
		if s.index != nil {
			s.index[s.list[i].Name] = i
		}
	}
	s.list[last] = storage.Reminder{}
	s.list = s.list[:last]
	if s.index != nil {
		delete(s.index, name)
	}
}

func (s *reminderSet) reset() { *s = reminderSet{} }
