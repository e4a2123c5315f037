//! NATS server URLs. A setting may list several servers, the nodes of a
//! cluster ([`servers`]). A URL can carry credentials
//! (`nats://user:password@host:4222`, `nats://token@host:4222`), and a log
//! line or an error message is no place for them: everything that prints
//! a configured URL prints [`redacted`] instead.

/// The servers of a URL setting: one URL, or several separated by commas
/// (the client connects to one and moves to another when it goes).
/// async-nats reads a single string as one address, hence the split.
pub fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// `url` with any credentials replaced by `***`. A comma-separated list of
/// servers (as NATS clients accept) is redacted server by server.
pub fn redacted(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_list_of_servers_is_split() {
        assert_eq!(super::servers("nats://a:4222"), ["nats://a:4222"]);
        assert_eq!(
            super::servers("nats://a:4222, nats://b:4222,"),
            ["nats://a:4222", "nats://b:4222"]
        );
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(redacted("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redacted("nats://alice:s3cret@nats:4222"), "nats://***@nats:4222");
        assert_eq!(redacted("tls://t0ken@nats:4222/x@y"), "tls://***@nats:4222/x@y");
        assert_eq!(redacted("bob:pw@localhost"), "***@localhost");
        assert_eq!(
            redacted("nats://a:b@n1:4222,nats://c:d@n2:4222"),
            "nats://***@n1:4222,nats://***@n2:4222"
        );
    }
}
