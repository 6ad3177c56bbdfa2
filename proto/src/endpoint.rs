//! The gRPC endpoints a process connects to or hands out: `http://` or
//! `https://` URIs with a host. `Endpoint::from_shared` alone takes
//! `notaurl` or `pdp.local:7171`, and every call to such an endpoint then
//! fails; a process checks them when it starts instead.
//!
//! Every endpoint a process builds from a configured URL is made here: an
//! `http://` one speaks plain-text HTTP/2, an `https://` one TLS with the
//! server's certificate verified as a [`ClientTls`] says (the webpki roots,
//! plus extra roots such as a private CA), never plain text.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::tls::ClientTls;

/// How long a connection attempt may take (TCP, then TLS): a peer that
/// accepts nothing, or a host that drops packets, is an error after this,
/// not a wait without end.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one call of an administrative client (`authz decide`,
/// `authz policy`, a CSE loading its policies) may take before it fails: a
/// server that accepted the connection but stalls (stopped, wedged) must
/// not hang the client. Set with `Endpoint::timeout`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a client says of a call that failed with `text` (its error chain)
/// when [`CALL_TIMEOUT`] cut it, which tonic says only as "Timeout
/// expired": that `server` did not answer in time. `None` for any other
/// failure.
pub fn stalled(text: &str, server: &str) -> Option<String> {
    text.contains("Timeout expired").then(|| {
        format!(
            "{server} did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        )
    })
}

/// Connects `endpoint`, or says why not, within [`CONNECT_TIMEOUT`] (TCP,
/// then TLS: a server that accepts but never answers is caught by the
/// calls' own timeout, [`CALL_TIMEOUT`]).
pub async fn connect_within(endpoint: Endpoint) -> Result<Channel, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(error_chain(&e)),
        Err(_) => Err(format!(
            "no connection within {} s (a server that accepts but does not answer?)",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Why a URL cannot be a gRPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not parseable as a URI at all.
    #[error("not a URI")]
    NotUri,
    /// A URI without an `http`/`https` scheme or without a host.
    #[error("expected http://host:port or https://host:port")]
    NotHttp,
    /// An `https://` URI TLS cannot be set up for (a host that is no DNS
    /// name or IP address).
    #[error("cannot use TLS: {0}")]
    Tls(String),
}

/// The endpoint `url` names, if it is `http://` or `https://` with a host;
/// `https://` verifies the server against the webpki roots.
pub fn endpoint(url: &str) -> Result<Endpoint, EndpointError> {
    endpoint_with(url, &ClientTls::default())
}

/// The endpoint `url` names, if it is `http://` or `https://` with a host;
/// `https://` verifies the server as `tls` says.
pub fn endpoint_with(url: &str, tls: &ClientTls) -> Result<Endpoint, EndpointError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|_| EndpointError::NotUri)?;
    let uri = endpoint.uri();
    // `http://:80` has an authority with an empty host, and
    // `http://h:99999` a port no socket has: neither can be dialled.
    let dialable = uri.authority().is_some_and(|a| {
        // The text after the host's last `:` (none inside `[::1]`): the
        // parser leaves a port that is no u16 out rather than refusing it.
        let port = a
            .as_str()
            .rsplit_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.contains(']'));
        !a.host().is_empty() && port.is_none_or(|p| p.parse::<u16>().is_ok())
    });
    if !dialable {
        return Err(EndpointError::NotHttp);
    }
    let scheme = uri.scheme_str().map(str::to_owned);
    let endpoint = endpoint.connect_timeout(CONNECT_TIMEOUT);
    match scheme.as_deref() {
        Some("http") => Ok(endpoint),
        Some("https") => tls
            .apply(endpoint)
            .map_err(|e| EndpointError::Tls(error_chain(&e))),
        _ => Err(EndpointError::NotHttp),
    }
}

/// `e` and its sources, `: `-separated: a tonic transport error alone says
/// only "transport error", its sources say why (a certificate the client
/// does not trust, a refused connection).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    // A status's own `Display` dumps its source's debug form: read as a
    // failed call instead, wherever in a chain it is.
    if let Some(status) = e.downcast_ref::<tonic::Status>() {
        return status_chain(status);
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        match s.downcast_ref::<tonic::Status>() {
            Some(status) => {
                append_new(&mut text, &status_chain(status));
                break;
            }
            None => append_new(&mut text, &s.to_string()),
        }
        source = s.source();
    }
    text
}

/// Appends to `text` the `: `-separated parts of a cause's message that
/// `text` does not say yet (a cause often repeats its own source's words:
/// `operation was canceled: connection closed` after `operation was
/// canceled`). A part is said when it is a whole part of `text`, not when
/// it is within one: a field name `acp` stays after an ACP ID `acpTooBig`.
fn append_new(text: &mut String, cause: &str) {
    for part in cause.split(": ") {
        if !part.is_empty() && !text.split(": ").any(|said| said == part) {
            text.push_str(": ");
            text.push_str(part);
        }
    }
}

/// What an UNIMPLEMENTED status without a message (what tonic answers for
/// a service the server does not serve) means to an operator: the address
/// answers gRPC, but it is another service.
pub const NOT_SERVED: &str = "the server there does not serve this call (is it another service?)";

/// A status's message, or [`NOT_SERVED`] for tonic's message-less
/// UNIMPLEMENTED.
pub fn status_message(s: &tonic::Status) -> &str {
    if s.code() == tonic::Code::Unimplemented && s.message().is_empty() {
        NOT_SERVED
    } else {
        s.message()
    }
}

/// A failed call in one line: its code, its message, then each cause of
/// its source that the line does not say yet (tonic's own `Display` of a
/// status dumps the source's debug form).
pub fn status_chain(s: &tonic::Status) -> String {
    // A status without a message is its code alone, not `Code: `.
    let message = status_message(s);
    let mut text = if message.is_empty() {
        format!("{:?}", s.code())
    } else {
        format!("{:?}: {message}", s.code())
    };
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        append_new(&mut text, &e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cause that repeats the words before it adds only what is new.
    #[test]
    fn a_cause_repeating_its_predecessor_adds_only_the_rest() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "operation was canceled",
            Some(Box::new(E(
                "transport error",
                Some(Box::new(E(
                    "operation was canceled: connection closed",
                    None,
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "operation was canceled: transport error: connection closed"
        );
    }

    /// A cause's part that only appears inside a longer part before it
    /// (a field name inside an ID) is still said.
    #[test]
    fn a_part_within_a_longer_one_is_still_said() {
        let mut text = "toobig.json: acpTooBig: InvalidArgument".to_owned();
        append_new(&mut text, "acp: is 1155061 bytes encoded");
        assert_eq!(
            text,
            "toobig.json: acpTooBig: InvalidArgument: acp: is 1155061 bytes encoded"
        );
        append_new(&mut text, "InvalidArgument: acp");
        assert_eq!(
            text,
            "toobig.json: acpTooBig: InvalidArgument: acp: is 1155061 bytes encoded"
        );
    }

    #[test]
    fn a_status_says_its_code_message_and_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let s = tonic::Status::from_error(Box::new(io));
        let line = status_chain(&s);
        assert!(line.starts_with("Unknown: connection refused"), "{line}");
        assert_eq!(line.matches("connection refused").count(), 1, "{line}");
        assert_eq!(
            status_chain(&tonic::Status::unavailable("PIP down")),
            "Unavailable: PIP down"
        );
        // No message: the code alone, no dangling `: `.
        assert_eq!(status_chain(&tonic::Status::cancelled("")), "Cancelled");
        // tonic's answer for a service the server does not serve (a PDP's
        // `--prp` pointed at a PIP): said what it means.
        assert_eq!(
            status_chain(&tonic::Status::unimplemented("")),
            format!("Unimplemented: {NOT_SERVED}")
        );
        assert_eq!(
            status_chain(&tonic::Status::unimplemented("not in this test")),
            "Unimplemented: not in this test"
        );
    }

    /// README: a failed call in a log line reads `Code: message: cause`,
    /// also when it is a cause in a chain (a PRP watch that failed), not
    /// tonic's `Display` with its source's debug dump.
    #[test]
    fn a_status_in_an_error_chain_reads_as_a_failed_call() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe");
        let status = tonic::Status::from_error(Box::new(io));
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(status);
        let line = error_chain(boxed.as_ref());
        assert_eq!(line, "Unknown: broken pipe");
        #[derive(Debug)]
        struct Watching(tonic::Status);
        impl std::fmt::Display for Watching {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("watching the PRP")
            }
        }
        impl std::error::Error for Watching {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let line = error_chain(&Watching(tonic::Status::unavailable("PRP down")));
        assert_eq!(line, "watching the PRP: Unavailable: PRP down");
    }

    #[test]
    fn only_http_urls_with_a_host() {
        for good in [
            "http://127.0.0.1:7171",
            "https://pdp.example:443/",
            "http://[::1]:65535",
            "http://pdp.local",
        ] {
            assert!(endpoint(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("127.0.0.1 7171", EndpointError::NotUri),
            ("notaurl", EndpointError::NotHttp),
            ("pdp.local:7171", EndpointError::NotHttp),
            ("ftp://pdp.local", EndpointError::NotHttp),
            // An empty host, or a port out of range: nothing to dial.
            ("http://:80", EndpointError::NotHttp),
            ("https://:443", EndpointError::NotHttp),
            ("http://127.0.0.1:99999", EndpointError::NotHttp),
        ] {
            assert_eq!(endpoint(bad).err(), Some(why), "{bad}");
        }
    }
}
