//! Launches of template instances, pure (docs/ARCHITECTURE.md decision 10): which
//! instance a request gets by the template's isolation level, what makes a
//! namespace or session id acceptable, and the admission bulkhead that
//! bounds how many instance starts run at once and how many wait.
//!
//! ```text
//!   isolation   launch(namespace, session)   instance      cgroup
//!   none        (A, 1) (B, 2) (A, 3)         shared        <svc>/shared
//!   namespace   (A, 1) (A, 2) | (B, 1)       ns:A | ns:B   <svc>/ns:A, <svc>/ns:B
//!   session     (A, 1) (B, 1) | (A, 2)       session:1 | session:2
//! ```
//! An instance id is also its cgroup directory name, its record and log
//! file name and an HTTP path segment, so ids are checked, not escaped: 1 to
//! [`MAX_ID`] bytes of `[A-Za-z0-9_.-]`, starting with a letter or digit.
//! With the `ns:`/`session:` prefix no id can be `.`, `..`, or the name of
//! a cgroup interface file (`memory.max`, `cgroup.procs`).

use std::collections::VecDeque;

use crate::config::schema::Isolation;

/// The longest namespace or session id.
pub const MAX_ID: usize = 64;

/// The instance id of a template with `isolation: none`.
pub const SHARED: &str = "shared";

/// Why a launch request names no instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{level} isolation needs a {what}")]
    Missing {
        level: &'static str,
        what: &'static str,
    },
    #[error("{what} id {id:?} is empty or longer than {MAX_ID} bytes")]
    Length { what: &'static str, id: String },
    #[error("{what} id {id:?} has {bad:?}; ids are letters, digits, `_`, `.` and `-`")]
    Charset {
        what: &'static str,
        id: String,
        bad: char,
    },
    #[error("{what} id {id:?} must start with a letter or a digit")]
    Start { what: &'static str, id: String },
}

/// Checks a namespace or session id (`what` says which, for the message).
pub fn check_id(what: &'static str, id: &str) -> Result<(), KeyError> {
    if id.is_empty() || id.len() > MAX_ID {
        return Err(KeyError::Length {
            what,
            id: excerpt(id),
        });
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(KeyError::Charset {
            what,
            id: id.to_string(),
            bad,
        });
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(KeyError::Start {
            what,
            id: id.to_string(),
        });
    }
    Ok(())
}

fn excerpt(id: &str) -> String {
    if id.len() <= MAX_ID {
        return id.to_string();
    }
    let mut end = MAX_ID;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &id[..end])
}

/// The instance a launch gets: `shared`, `ns:<namespace>` or
/// `session:<session>`. The id the level does not use is ignored (it is
/// still passed to a new instance in its environment), but checked when
/// given, so a bad id never reaches an environment variable.
pub fn instance_id(
    level: Isolation,
    namespace: Option<&str>,
    session: Option<&str>,
) -> Result<String, KeyError> {
    if let Some(ns) = namespace {
        check_id("namespace", ns)?;
    }
    if let Some(s) = session {
        check_id("session", s)?;
    }
    match level {
        Isolation::None => Ok(SHARED.to_string()),
        Isolation::Namespace => namespace
            .map(|ns| format!("ns:{ns}"))
            .ok_or(KeyError::Missing {
                level: "namespace",
                what: "namespace (--namespace)",
            }),
        Isolation::Session => session
            .map(|s| format!("session:{s}"))
            .ok_or(KeyError::Missing {
                level: "session",
                what: "session (--session)",
            }),
    }
}

/// Whether `id` is an instance id `level` would make (adoption of a
/// template's instance after a daemon restart checks its record with this).
pub fn is_instance_of(level: Isolation, id: &str) -> bool {
    let rest = match level {
        Isolation::None => return id == SHARED,
        Isolation::Namespace => id.strip_prefix("ns:"),
        Isolation::Session => id.strip_prefix("session:"),
    };
    rest.is_some_and(|r| check_id("instance", r).is_ok())
}

// ------------------------------------------------------------ admission

/// What [`Admission::enter`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<T> {
    /// A slot is free: start now (the slot is held until [`Admission::release`]).
    Now(T),
    /// Waiting in the queue under this ticket.
    Queued(u64),
    /// Queue full: `T` handed back to be refused.
    Rejected(T),
}

/// The admission bulkhead (`supervisor.launch`): at most `max_concurrent`
/// starts in progress, at most `max_queue` waiting, first come first served.
/// Timeouts are the caller's: it cancels a ticket when its time is up.
#[derive(Debug)]
pub struct Admission<T> {
    max_concurrent: u32,
    max_queue: u32,
    active: u32,
    queue: VecDeque<(u64, T)>,
    next_ticket: u64,
}

impl<T> Admission<T> {
    pub fn new(max_concurrent: u32, max_queue: u32) -> Self {
        Admission {
            max_concurrent,
            max_queue,
            active: 0,
            queue: VecDeque::new(),
            next_ticket: 0,
        }
    }

    pub fn active(&self) -> u32 {
        self.active
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn limits(&self) -> (u32, u32) {
        (self.max_concurrent, self.max_queue)
    }

    pub fn enter(&mut self, item: T) -> Admit<T> {
        if self.active < self.max_concurrent {
            self.active += 1;
            return Admit::Now(item);
        }
        if self.queue.len() >= self.max_queue as usize {
            return Admit::Rejected(item);
        }
        self.next_ticket += 1;
        self.queue.push_back((self.next_ticket, item));
        Admit::Queued(self.next_ticket)
    }

    /// A start finished (or never began): its slot goes to the first in the
    /// queue, whose item is returned holding it.
    pub fn release(&mut self) -> Option<(u64, T)> {
        if self.active == 0 {
            return None;
        }
        if let Some(next) = self.queue.pop_front() {
            return Some(next);
        }
        self.active = self.active.saturating_sub(1);
        None
    }

    /// The first waiting item that matches.
    pub fn find_mut(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<&mut T> {
        self.queue
            .iter_mut()
            .find(|(_, item)| pred(item))
            .map(|(_, item)| item)
    }

    /// Empties the queue, one item at a time (shutdown).
    pub fn pop_queued(&mut self) -> Option<(u64, T)> {
        self.queue.pop_front()
    }

    /// A waiting launch gave up; `None` if it had left the queue already.
    pub fn cancel(&mut self, ticket: u64) -> Option<T> {
        let at = self.queue.iter().position(|(t, _)| *t == ticket)?;
        self.queue.remove(at).map(|(_, item)| item)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The three examples of the isolation design (seeds/000): which
    /// requests share an instance.
    #[test]
    fn the_three_levels_key_requests_as_designed() {
        let requests = [("A", "1"), ("B", "2"), ("A", "3")];
        let ids = |level| {
            requests
                .iter()
                .map(|(ns, s)| instance_id(level, Some(ns), Some(s)).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(Isolation::None), ["shared", "shared", "shared"]);

        let requests = [("A", "1"), ("A", "2"), ("B", "1")];
        let ns: Vec<_> = requests
            .iter()
            .map(|(n, s)| instance_id(Isolation::Namespace, Some(n), Some(s)).unwrap())
            .collect();
        assert_eq!(ns, ["ns:A", "ns:A", "ns:B"]);

        let requests = [("A", "1"), ("B", "1"), ("A", "2")];
        let ss: Vec<_> = requests
            .iter()
            .map(|(n, s)| instance_id(Isolation::Session, Some(n), Some(s)).unwrap())
            .collect();
        assert_eq!(ss, ["session:1", "session:1", "session:2"]);
    }

    #[test]
    fn a_level_needs_its_own_id_and_ignores_the_other() {
        assert_eq!(instance_id(Isolation::None, None, None).unwrap(), "shared");
        assert_eq!(
            instance_id(Isolation::Namespace, Some("t1"), None).unwrap(),
            "ns:t1"
        );
        assert_eq!(
            instance_id(Isolation::Session, None, Some("s9")).unwrap(),
            "session:s9"
        );
        assert!(matches!(
            instance_id(Isolation::Namespace, None, Some("s")),
            Err(KeyError::Missing {
                level: "namespace",
                ..
            })
        ));
        assert!(matches!(
            instance_id(Isolation::Session, Some("n"), None),
            Err(KeyError::Missing {
                level: "session",
                ..
            })
        ));
        // A bad id is refused even where the level does not use it.
        assert!(instance_id(Isolation::None, Some("../x"), None).is_err());
    }

    #[test]
    fn ids_are_checked_not_escaped() {
        for ok in ["a", "tenant-1", "T_2.b", "0", &"x".repeat(MAX_ID)] {
            assert_eq!(check_id("namespace", ok), Ok(()), "{ok}");
        }
        let long = "x".repeat(MAX_ID + 1);
        for (bad, want) in [
            ("", "empty"),
            (long.as_str(), "longer"),
            ("a/b", "'/'"),
            ("..", "start"),
            (".hidden", "start"),
            ("-x", "start"),
            ("a b", "' '"),
            ("a:b", "':'"),
            ("a\nb", "'\\n'"),
            ("ü", "'ü'"),
            ("a%2f", "'%'"),
        ] {
            let e = check_id("session", bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
            assert!(e.contains("session id"), "{e}");
        }
        // Messages about huge ids stay short.
        let e = check_id("session", &"y".repeat(10_000))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn instance_ids_are_recognised_per_level() {
        assert!(is_instance_of(Isolation::None, "shared"));
        assert!(!is_instance_of(Isolation::None, "ns:a"));
        assert!(is_instance_of(Isolation::Namespace, "ns:tenant-1"));
        assert!(!is_instance_of(Isolation::Namespace, "ns:"));
        assert!(!is_instance_of(Isolation::Namespace, "ns:../x"));
        assert!(!is_instance_of(Isolation::Namespace, "session:a"));
        assert!(!is_instance_of(Isolation::Namespace, "0"));
        assert!(is_instance_of(Isolation::Session, "session:abc"));
        assert!(!is_instance_of(Isolation::Session, "shared"));
        // Every id instance_id makes is recognised.
        for level in [Isolation::None, Isolation::Namespace, Isolation::Session] {
            let id = instance_id(level, Some("n1"), Some("s1")).unwrap();
            assert!(is_instance_of(level, &id), "{id}");
        }
    }

    #[test]
    fn admission_admits_queues_and_rejects_in_order() {
        let mut a = Admission::new(2, 2);
        assert_eq!(a.enter('a'), Admit::Now('a'));
        assert_eq!(a.enter('b'), Admit::Now('b'));
        assert_eq!(a.enter('c'), Admit::Queued(1));
        assert_eq!(a.enter('d'), Admit::Queued(2));
        assert_eq!(a.enter('e'), Admit::Rejected('e'));
        assert_eq!((a.active(), a.queued()), (2, 2));
        // A finished start hands its slot to the head of the queue.
        assert_eq!(a.release(), Some((1, 'c')));
        assert_eq!((a.active(), a.queued()), (2, 1));
        // A timed-out waiter leaves the queue; twice is nothing.
        assert_eq!(a.cancel(2), Some('d'));
        assert_eq!(a.cancel(2), None);
        assert_eq!(a.release(), None);
        assert_eq!(a.release(), None);
        assert_eq!((a.active(), a.queued()), (0, 0));
        // Never below zero.
        assert_eq!(a.release(), None);
        assert_eq!(a.active(), 0);
    }

    /// 50 launches of distinct keys under max_concurrent 4, max_queue 10,
    /// no start finishing: 4 start, 10 wait, 36 are refused.
    #[test]
    fn fifty_launches_under_four_and_ten() {
        let mut a = Admission::new(4, 10);
        let (mut now, mut queued, mut rejected) = (0, 0, 0);
        for k in 0..50 {
            match a.enter(k) {
                Admit::Now(_) => now += 1,
                Admit::Queued(_) => queued += 1,
                Admit::Rejected(_) => rejected += 1,
            }
        }
        assert_eq!((now, queued, rejected), (4, 10, 36));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Enter,
            Release,
            Cancel(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                Just(Op::Enter),
                Just(Op::Release),
                (0u64..40).prop_map(Op::Cancel)
            ]
        }

        proptest! {
            /// Whatever happens: never more than max_concurrent active or
            /// max_queue waiting; a queue only while every slot is taken;
            /// every launch is started, waiting, refused or cancelled.
            #[test]
            fn admission_bounds_hold(
                max_c in 0u32..5, max_q in 0u32..5,
                ops in proptest::collection::vec(op(), 0..80),
            ) {
                let mut a = Admission::new(max_c, max_q);
                let (mut entered, mut started, mut refused, mut cancelled) = (0u32, 0u32, 0u32, 0u32);
                for o in ops {
                    match o {
                        Op::Enter => {
                            entered += 1;
                            match a.enter(()) {
                                Admit::Now(()) => started += 1,
                                Admit::Queued(_) => {}
                                Admit::Rejected(()) => refused += 1,
                            }
                        }
                        Op::Release => {
                            if a.release().is_some() {
                                started += 1;
                            }
                        }
                        Op::Cancel(t) => {
                            if a.cancel(t).is_some() {
                                cancelled += 1;
                            }
                        }
                    }
                    prop_assert!(a.active() <= max_c);
                    prop_assert!(a.queued() <= max_q as usize);
                    prop_assert!(a.queued() == 0 || a.active() == max_c);
                    prop_assert_eq!(
                        entered,
                        started + refused + cancelled + u32::try_from(a.queued()).unwrap()
                    );
                }
            }
        }
    }
}
