//! The TLS rules both SQL backends apply. How each builds its TLS client differs with its
//! crate (see the module docs of `sql`), so what is here is the decision and the provider.

use crate::store::{BackendError, BackendErrorKind};

/// The one plaintext rule of the SQL backends, applied when a URI turns TLS off: allowed only
/// when the server is on this machine (`loopback`: every host of the URI passes
/// [`crate::loopback::is_loopback_host`]); otherwise
/// [`NotSupported`](BackendErrorKind::NotSupported) with `refusal`'s message, before anything
/// is sent.
pub(crate) fn allow_plaintext(
    loopback: bool,
    refusal: impl FnOnce() -> String,
) -> Result<(), BackendError> {
    if loopback {
        Ok(())
    } else {
        Err(super::error(BackendErrorKind::NotSupported, refusal()))
    }
}

/// The crypto provider of every TLS connection to an SQL server: ring. The PostgreSQL backend
/// passes it to its client configuration; the MySQL backend installs it as the process's
/// default, the only way the `mysql` crate takes one.
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_only_for_loopback() {
        assert!(allow_plaintext(true, || unreachable!()).is_ok());
        let e = allow_plaintext(false, || "no".to_owned()).unwrap_err();
        assert_eq!(e.kind(), BackendErrorKind::NotSupported);
        assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "no");
    }
}
