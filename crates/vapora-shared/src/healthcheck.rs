//! The `healthcheck` subcommand of every service binary: container health
//! checks run it, because a minimal runtime image has no curl or wget.
//!
//! It asks the service on this host for a probe path and exits 0 on a 2xx,
//! 1 otherwise. Written on `std::net` rather than with reqwest: a loopback
//! request of one line, of whose answer only the status code is read,
//! needs no runtime, TLS or connection pool.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// How long the probe waits to connect, and for the answer.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// `GET path` on `127.0.0.1:port`: the status code of the answer.
pub fn probe(port: u16, path: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    // One write: `write!` would send the pieces one by one, and a server
    // that answers after the first could close before the rest.
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    // "HTTP/1.1 200 OK": the code is the second word of the first line.
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    let text = String::from_utf8_lossy(&head[..read]);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))
}

/// [`probe`] as a process exit code, saying on stderr what went wrong.
pub fn exit_code(port: u16, path: &str) -> ExitCode {
    match probe(port, path) {
        Ok(code) if (200..300).contains(&code) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("127.0.0.1:{port}{path} answered {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("127.0.0.1:{port}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server answering `reply` to the first connection.
    fn serve_once(reply: &'static str) -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // The whole request head, then the reply.
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                request.push(byte[0]);
            }
            let _ = stream.write_all(reply.as_bytes());
        });
        port
    }

    #[test]
    fn reads_the_status_code_and_fails_on_anything_but_2xx() {
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(probe(ok, "/ready").unwrap(), 200);
        let unready = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(exit_code(unready, "/ready"), ExitCode::FAILURE);
        let garbage = serve_once("hello");
        assert!(probe(garbage, "/ready").is_err());
        // Nobody listening.
        let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(exit_code(closed, "/ready"), ExitCode::FAILURE);
    }
}
