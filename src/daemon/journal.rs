//! The daemon's event journal: lifecycle changes, health changes and
//! violations of every instance, numbered daemon-wide, the latest
//! [`KEEP`] kept in memory. `bulkhead events` reads it; `-f` long-polls:
//! a request with nothing new yet is parked here until an event it wants
//! arrives (the server answers empty after its own timeout, and a parked
//! request whose client went away is dropped at the next push).

use std::collections::VecDeque;

use tokio::sync::oneshot;

use crate::api::proto::{ApiError, EventRecord, EventsReply, Response};

/// Events kept.
pub const KEEP: usize = 4096;

type Reply = oneshot::Sender<Result<Response, ApiError>>;

struct Waiter {
    service: Option<String>,
    after: u64,
    reply: Reply,
}

#[derive(Default)]
pub struct Journal {
    events: VecDeque<EventRecord>,
    last_seq: u64,
    waiters: Vec<Waiter>,
}

impl Journal {
    /// Adds an event (its `seq` and `time` are set here) and answers the
    /// parked requests it concerns.
    pub fn push(&mut self, mut e: EventRecord) {
        self.last_seq += 1;
        e.seq = self.last_seq;
        if e.time.is_empty() {
            e.time = crate::sandbox::logsink::timestamp(std::time::SystemTime::now());
        }
        let service = e.service.clone();
        self.events.push_back(e);
        while self.events.len() > KEEP {
            self.events.pop_front();
        }
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            if w.reply.is_closed() {
                continue;
            }
            if w.service.as_ref().is_none_or(|s| *s == service) {
                let r = self.query(w.service.as_deref(), Some(w.after));
                let _ = w.reply.send(Ok(Response::Events(r)));
            } else {
                self.waiters.push(w);
            }
        }
    }

    /// Events with seq > `after` (all kept when `None`), of `service` only
    /// when set.
    pub fn query(&self, service: Option<&str>, after: Option<u64>) -> EventsReply {
        let after = after.unwrap_or(0);
        let first_kept = self.events.front().map_or(self.last_seq + 1, |e| e.seq);
        EventsReply {
            events: self
                .events
                .iter()
                .filter(|e| e.seq > after && service.is_none_or(|s| s == e.service))
                .cloned()
                .collect(),
            last_seq: self.last_seq,
            dropped: first_kept.saturating_sub(after.saturating_add(1)),
        }
    }

    /// Answers at once when there is something to say, else parks the
    /// request until there is.
    pub fn wait(&mut self, service: Option<String>, after: Option<u64>, reply: Reply) {
        let r = self.query(service.as_deref(), after);
        // `after` beyond the newest seq: the client followed an earlier
        // daemon; answering now tells it where this one is.
        let restarted = after.is_some_and(|a| a > self.last_seq);
        if !r.events.is_empty() || r.dropped > 0 || restarted {
            let _ = reply.send(Ok(Response::Events(r)));
            return;
        }
        self.waiters.retain(|w| !w.reply.is_closed());
        self.waiters.push(Waiter {
            service,
            after: after.unwrap_or(self.last_seq),
            reply,
        });
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(service: &str, message: &str) -> EventRecord {
        EventRecord {
            service: service.into(),
            instance: "0".into(),
            kind: "state".into(),
            message: message.into(),
            ..EventRecord::default()
        }
    }

    fn answer(rx: &mut oneshot::Receiver<Result<Response, ApiError>>) -> Option<EventsReply> {
        match rx.try_recv() {
            Ok(Ok(Response::Events(r))) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn numbers_filters_and_forgets_the_oldest() {
        let mut j = Journal::default();
        j.push(ev("a", "1"));
        j.push(ev("b", "2"));
        j.push(ev("a", "3"));
        let r = j.query(Some("a"), None);
        assert_eq!(r.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!((r.last_seq, r.dropped), (3, 0));
        assert!(r.events[0].time.ends_with('Z'));
        assert_eq!(j.query(None, Some(2)).events.len(), 1);
        for i in 0..KEEP {
            j.push(ev("c", &i.to_string()));
        }
        let r = j.query(None, Some(1));
        assert_eq!(r.events.len(), KEEP);
        assert_eq!(r.events[0].seq, 4);
        assert_eq!(r.dropped, 2, "seq 2 and 3 are gone");
        assert_eq!(j.query(None, Some(j.last_seq())).events.len(), 0);
        // Any `after` the API accepts is answered, the largest too.
        let r = j.query(None, Some(u64::MAX));
        assert_eq!((r.events.len(), r.dropped), (0, 0));
    }

    #[test]
    fn a_parked_request_is_answered_by_the_first_event_it_wants() {
        let mut j = Journal::default();
        j.push(ev("a", "old"));
        let (tx, mut rx) = oneshot::channel();
        j.wait(Some("a".into()), Some(1), tx);
        assert!(answer(&mut rx).is_none(), "parked");
        j.push(ev("b", "not for it"));
        assert!(answer(&mut rx).is_none());
        j.push(ev("a", "new"));
        let r = answer(&mut rx).unwrap();
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].message, "new");
        assert_eq!(r.last_seq, 3);
        // Something new already: answered at once.
        let (tx, mut rx) = oneshot::channel();
        j.wait(None, Some(1), tx);
        assert_eq!(answer(&mut rx).unwrap().events.len(), 2);
        // A client that went away is dropped at the next push.
        let (tx, rx) = oneshot::channel();
        j.wait(None, None.or(Some(3)), tx);
        drop(rx);
        j.push(ev("a", "x"));
        assert!(j.waiters.is_empty());
    }
}
