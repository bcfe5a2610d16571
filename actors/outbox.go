package actors

import (
	"encoding/json"
	"fmt"

	"github.com/weftrt/weft/limits"
	"github.com/weftrt/weft/schedules"
	"github.com/weftrt/weft/storage"
	"github.com/weftrt/weft/workflow"
)

// What an instance sends to other instances: the records of its outbox (events
// it sent, terminations of its children) and, once it finished, its result to
// its parent. Each is durable at the sender until the receiver committed it
// (see delivery.go), so a receiver may see one twice; this file is also where a
// receiver recognises an event it applied already.
//
// A sender delivers its outbox records to any one target in sequence order, the
// next only once the previous one was acknowledged (committed by the target),
// so the target needs to keep only the newest sequence number it applied from
// each sender (storage.ReceivedMark) to tell a re-delivery from a new record.

// MessageID names an outbox record: the instance that sent it, which
// incarnation of that id (its creation time, in unix nanoseconds: a purged and
// restarted instance numbers its records from 0 again), and the record's place
// in the sender's outbox.
type MessageID struct {
	Sender      string
	Incarnation int64
	Seq         uint64
}

// queueOutbox adds a record to the step's outbox: stored in the step's batch
// and sent once the step is committed.
func (w *workflowActor) queueOutbox(t *txn, rec *storage.OutboxRecord) error {
	rec.Seq = w.row.NextOutboxSeq
	w.row.NextOutboxSeq++
	if err := t.b.PutOutbox(w.part, w.id, rec); err != nil {
		return err
	}
	w.keepOutbox(rec)
	t.sends = append(t.sends, rec)
	return nil
}

// keepOutbox adds a stored record to what the actor knows of the outbox.
func (w *workflowActor) keepOutbox(rec *storage.OutboxRecord) {
	put(&w.outbox, rec.Seq, rec)
	if w.outboxTargets == nil {
		w.outboxTargets = make(map[string]int)
	}
	w.outboxTargets[rec.Target]++
}

// sendAll sends those of recs (records in the outbox) that are the earliest
// for their target; each of the others is sent by the acknowledgement of the
// one before it (outboxSent).
func (w *workflowActor) sendAll(recs []*storage.OutboxRecord) {
	var first map[string]uint64 // the earliest record of each target that has several
	for _, rec := range recs {
		if w.outboxTargets[rec.Target] > 1 {
			if first == nil {
				first = make(map[string]uint64)
				for seq, r := range w.outbox {
					if cur, ok := first[r.Target]; !ok || seq < cur {
						first[r.Target] = seq
					}
				}
			}
			if first[rec.Target] != rec.Seq {
				continue
			}
		}
		w.send(rec)
	}
}

// send delivers an outbox record until its target committed it, then lets the
// instance forget it (outboxSent).
func (w *workflowActor) send(rec *storage.OutboxRecord) {
	var msg any
	switch {
	case rec.Kind == storage.OutboxTerminate:
		msg = TerminateRequest{Reason: rec.Data, Recursive: true}
	case rec.Kind == storage.OutboxLimiter:
		// No From: a limiter hears from every instance that ever asked it
		// for a permit, and would keep a received mark for each, for good.
		// Its requests need none: taking one twice changes nothing (a holder
		// asks once, gives back once), and a stale copy after a release
		// queues a holder whose permit comes straight back.
		msg = RaiseEventRequest{Name: rec.Name, Data: rec.Data, Create: &StartRequest{Name: limits.WorkflowName, Input: []byte("{}"), Reuse: ReuseIgnore}}
	case rec.Name == FinishNoticeEvent:
		// No From either: a schedule hears from each of its runs once, and
		// forgets a run it already forgot when told twice.
		msg = RaiseEventRequest{Name: rec.Name, Data: rec.Data}
	default:
		msg = RaiseEventRequest{Name: rec.Name, Data: rec.Data,
			From: &MessageID{Sender: w.id, Incarnation: w.row.CreatedAt.UnixNano(), Seq: rec.Seq}}
	}
	w.h.deliverThen(rec.Target, msg, w.id, outboxSent{rec.Seq})
}

// outboxSent forgets a record its target committed, and sends the next one
// waiting for the same target.
func (w *workflowActor) outboxSent(seq uint64) error {
	rec := w.outbox[seq]
	if w.row == nil || rec == nil {
		return nil // an acknowledgement sent twice
	}
	delete(w.outbox, seq)
	t := w.newTxn()
	t.b.DeleteOutbox(w.part, w.id, seq)
	if w.outboxTargets[rec.Target]--; w.outboxTargets[rec.Target] > 0 {
		var next *storage.OutboxRecord
		for _, other := range w.outbox {
			if other.Target == rec.Target && (next == nil || other.Seq < next.Seq) {
				next = other
			}
		}
		t.sends = append(t.sends, next)
	} else {
		delete(w.outboxTargets, rec.Target)
	}
	return w.commit(t)
}

// received reports whether the outbox record id was applied here already;
// if not, the step records that it is, in batch t.
func (w *workflowActor) received(t *txn, id *MessageID) (bool, error) {
	mark, ok := w.receivedFrom[id.Sender]
	if !ok {
		var err error
		if mark, err = w.h.db.ReceivedMark(w.part, w.id, id.Sender); err != nil {
			return false, fmt.Errorf("instance %s: %w", w.id, err)
		}
	}
	if mark.Covers(id.Incarnation, id.Seq) {
		return true, nil
	}
	mark = storage.ReceivedMark{Incarnation: id.Incarnation, Seq: id.Seq}
	if err := t.b.PutReceivedMark(w.part, w.id, id.Sender, mark); err != nil {
		return false, err
	}
	put(&w.receivedFrom, id.Sender, mark) // dropped with the rest if the step does not commit
	return false, nil
}

// keepsNoMarks reports whether instances of workflow name hear only from
// senders that send without a record id (send: limiters, schedules). Their
// received marks are left from older binaries, and of no use.
func keepsNoMarks(name string) bool {
	return name == limits.WorkflowName || name == schedules.WorkflowName
}

// dropOldMarks deletes, in t, the received marks an instance that keeps
// none was left with, once per activation.
func (w *workflowActor) dropOldMarks(t *txn) error {
	if w.marksDropped || !keepsNoMarks(w.row.Name) {
		return nil
	}
	has, err := w.h.db.HasReceivedMarks(w.part, w.id)
	if err != nil {
		return fmt.Errorf("instance %s: %w", w.id, err)
	}
	if has { // a limiter may have one per instance that ever asked it: one range deletion
		t.b.DeleteReceivedMarks(w.part, w.id)
		w.receivedFrom = nil
	}
	w.marksDropped = true // reset by unload if the step does not commit
	return nil
}

// notifyParent delivers a finished child's outcome to its parent until the
// parent committed it, then clears the child's pending flag.
func (w *workflowActor) notifyParent() {
	row := w.row
	res := ChildResult{Gen: row.ParentGen, TaskID: row.ParentTask, ChildID: w.id, Output: row.Output}
	switch row.Status {
	case storage.Failed:
		res.Output = nil
		res.Failure = &workflow.Failure{Type: "ChildWorkflowFailed", Message: "child failed"}
		if row.Failure != nil {
			res.Failure = &workflow.Failure{Type: row.Failure.Type, Message: row.Failure.Message, Stack: row.Failure.Stack}
		}
	case storage.Terminated:
		res.Output = nil
		res.Failure = &workflow.Failure{Type: "Terminated", Message: fmt.Sprintf("child workflow %s was terminated: %s", w.id, row.Output), NonRetriable: true}
	}
	w.h.deliverThen(row.ParentID, res, w.id, parentNotified{})
}

// FinishNoticeEvent is the event an instance started with a Notify target
// raises on it when it finishes, with a FinishNotice as data (a schedule
// learns this way that its run ended).
const FinishNoticeEvent = "weft.run-finished"

// FinishNotice is FinishNoticeEvent's data.
type FinishNotice struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// queueFinishNotice sends the finish notice through the outbox, so it is
// durable with the step that finishes the instance.
func (w *workflowActor) queueFinishNotice(t *txn) {
	if w.row.Notify == "" {
		return
	}
	data, _ := json.Marshal(FinishNotice{ID: w.id, Status: w.row.Status.String()}) // cannot fail: two strings
	// An error is kept in the batch and fails the step's commit.
	_ = w.queueOutbox(t, &storage.OutboxRecord{Target: w.row.Notify, Name: FinishNoticeEvent, Data: data})
}
