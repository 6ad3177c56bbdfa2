//! The gRPC endpoints a process connects to or hands out: `http://` or
//! `https://` URIs with a host. `Endpoint::from_shared` alone takes
//! `notaurl` or `pdp.local:7171`, and every call to such an endpoint then
//! fails; a process checks them when it starts instead.

use tonic::transport::Endpoint;

/// Why a URL cannot be a gRPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not parseable as a URI at all.
    #[error("not a URI")]
    NotUri,
    /// A URI without an `http`/`https` scheme or without a host.
    #[error("expected http://host:port or https://host:port")]
    NotHttp,
}

/// The endpoint `url` names, if it is `http://` or `https://` with a host.
pub fn endpoint(url: &str) -> Result<Endpoint, EndpointError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|_| EndpointError::NotUri)?;
    let uri = endpoint.uri();
    if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() {
        Ok(endpoint)
    } else {
        Err(EndpointError::NotHttp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host() {
        for good in ["http://127.0.0.1:7171", "https://pdp.example:443/"] {
            assert!(endpoint(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("127.0.0.1 7171", EndpointError::NotUri),
            ("notaurl", EndpointError::NotHttp),
            ("pdp.local:7171", EndpointError::NotHttp),
            ("ftp://pdp.local", EndpointError::NotHttp),
        ] {
            assert_eq!(endpoint(bad).err(), Some(why), "{bad}");
        }
    }
}
