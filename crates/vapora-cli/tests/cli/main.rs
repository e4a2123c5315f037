//! End-to-end tests of the `vapora` binary against a backend started in
//! this process. One test binary: the backend is linked (and its build
//! paid for) once.

mod config;
mod errors;
mod events;
mod keys;
mod projects;
mod reconnect;
mod schedules;
mod support;
mod tasks;
mod watch;
mod workflows;
