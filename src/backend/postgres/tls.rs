//! The PostgreSQL backend's TLS client: rustls with the shared provider (ring) and the CA roots
//! it trusts, the operating system's or those of an `sslrootcert` file.

use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

use super::{BackendError, BackendErrorKind, error};
use crate::backend::sql::tls as sql_tls;

/// rustls with the ring provider (chosen explicitly, so another crate enabling a second
/// provider cannot make the choice ambiguous) and the OS's or `root_file`'s CA certificates.
pub(super) fn connector(root_file: Option<&str>) -> Result<MakeRustlsConnect, BackendError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let certs: Vec<CertificateDer<'static>> = match root_file {
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| {
                error(
                    BackendErrorKind::Io,
                    format!("cannot read the sslrootcert file: {e}"),
                )
            })?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(error(
            BackendErrorKind::Other,
            match root_file {
                Some(_) => "the sslrootcert file holds no usable CA certificate",
                None => {
                    "no CA certificates found in the operating system's store (install \
                     ca-certificates, or pass sslrootcert=PATH in the URI)"
                }
            },
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(sql_tls::provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| error(BackendErrorKind::Other, format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
