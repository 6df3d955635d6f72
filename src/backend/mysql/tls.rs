//! The MySQL backend's TLS: `ssl_mode`, the rules for a URI that turns TLS off, and the
//! `mysql` crate's TLS options. The crate builds the rustls client itself (Mozilla's roots,
//! from `webpki-roots`, plus `root_cert_path`); it takes the process's default provider, which
//! is set to the shared one (ring) here.

use ::mysql::{Opts, SslOpts};

use super::config::{bad_uri, refused};
use super::{BackendError, Result};
use crate::backend::sql::tls as sql_tls;

/// How the connection is protected (`ssl_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    Disabled,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    /// Parses the value of `ssl_mode` (any case).
    pub(super) fn parse(value: &str) -> Result<Self, BackendError> {
        match value.to_ascii_lowercase().as_str() {
            "disabled" => Ok(SslMode::Disabled),
            "verify_ca" => Ok(SslMode::VerifyCa),
            "verify_identity" => Ok(SslMode::VerifyIdentity),
            _ => Err(bad_uri(
                "ssl_mode must be verify_identity (the default), verify_ca or disabled",
            )),
        }
    }
}

/// TLS parameters, meaningless with `ssl_mode=disabled`.
const TLS_PARAMS: [&str; 4] = [
    "root_cert_path",
    "cert_chain_path",
    "priv_key_path",
    "cipher_suites",
];

/// The checks on a URI with `ssl_mode=disabled`: the host must be loopback (the shared rule,
/// [`sql_tls::allow_plaintext`]), no TLS parameter may be given (`has` tells which are), and
/// the cleartext password plugin may not be enabled (`cleartext` reads its parameter).
pub(super) fn check_plaintext(
    host: &url::Host,
    loopback: bool,
    has: impl Fn(&str) -> bool,
    cleartext: impl FnOnce() -> Result<bool, BackendError>,
) -> Result<(), BackendError> {
    sql_tls::allow_plaintext(loopback, || {
        format!(
            "refusing to connect to {host} without TLS: ssl_mode=disabled is accepted only for \
             a loopback host (127.0.0.0/8, ::1, localhost)"
        )
    })?;
    if let Some(name) = TLS_PARAMS.iter().find(|p| has(p)) {
        return Err(bad_uri(format!(
            "URI parameter {name} is a TLS option, but ssl_mode=disabled"
        )));
    }
    if has("enable_cleartext_plugin") && cleartext()? {
        return Err(refused(
            "enable_cleartext_plugin sends the password in clear: not accepted without TLS",
        ));
    }
    Ok(())
}

/// The TLS options of the client: none with `ssl_mode=disabled`; else those of `parsed`
/// (`root_cert_path`, a client certificate, `cipher_suites`) with the certificate always
/// verified, and its name unless `ssl_mode=verify_ca`.
pub(super) fn ssl_opts(mode: SslMode, parsed: &Opts) -> Option<SslOpts> {
    if mode == SslMode::Disabled {
        return None;
    }
    install_tls_provider();
    Some(
        parsed
            .get_ssl_opts()
            .cloned()
            .unwrap_or_default()
            .with_danger_skip_domain_validation(mode == SslMode::VerifyCa)
            .with_danger_accept_invalid_certs(false),
    )
}

/// rustls needs one process-wide crypto provider; with more than one compiled in (another
/// dependency may enable aws-lc-rs) it cannot choose and the `mysql` crate would panic. Ring is
/// installed unless the process already chose one.
fn install_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = sql_tls::provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{client_config, refusal};
    use crate::store::BackendErrorKind;

    #[test]
    fn tls_off_only_for_loopback() {
        // The crate's one loopback rule (crate::loopback): an IPv4-mapped loopback address is
        // loopback too, as it is for PostgreSQL's sslmode=disable.
        for host in [
            "127.0.0.1",
            "127.8.9.10",
            "[::1]",
            "localhost",
            "LOCALHOST",
            "[::ffff:127.0.0.1]",
        ] {
            let uri = format!("mysql://u:secret@{host}:3306/db?ssl_mode=disabled");
            let config = client_config(&uri, None, true).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert!(config.opts.get_ssl_opts().is_none(), "{host}");
        }
        for host in [
            "10.0.0.1",
            "db.example.com",
            "[2001:db8::1]",
            "128.0.0.1",
            "localhost.example.com",
            "127.0.0.1.example.com",
        ] {
            let e = refusal(&format!("mysql://u:secret@{host}/db?ssl_mode=disabled"));
            assert_eq!(e.kind(), BackendErrorKind::NotSupported, "{host}");
            assert!(e.to_string().contains("without TLS"), "{host}: {e}");
            assert!(!e.to_string().contains("secret"));
        }
    }

    #[test]
    fn tls_is_on_by_default_and_verifies() {
        let config = client_config("mysql://u:p@db.example.com/db", None, true).unwrap();
        let ssl = config.opts.get_ssl_opts().expect("TLS on");
        assert!(!ssl.skip_domain_validation() && !ssl.accept_invalid_certs());
        let config = client_config(
            "mysql://u:p@db.example.com/db?ssl_mode=VERIFY_CA",
            None,
            true,
        )
        .unwrap();
        assert!(config.opts.get_ssl_opts().unwrap().skip_domain_validation());
        let config = client_config("mysql://u:p@127.0.0.1/db", None, true).unwrap();
        assert!(
            config.opts.get_ssl_opts().is_some(),
            "loopback too, unless disabled"
        );
    }
}
