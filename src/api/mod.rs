//! The control socket: an HTTP+JSON server on a unix socket for the daemon,
//! and the blocking client the CLI uses. [`proto`] is the wire format.

pub mod proto;
