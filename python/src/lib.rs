//! `tokenvault._native`: the Python binding of the tokenvault library. The Python package
//! `tokenvault` (../tokenvault/) re-exports it and adds `tokenvault.zoho`.

use pyo3::prelude::*;

mod errors;
mod record;
mod store;

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<store::Store>()?;
    errors::register(module)?;
    module.add_function(wrap_pyfunction!(zoho_token_url, module)?)?;
    // The ten field names of a token record, in the Zoho SDKs' order (the library's list).
    module.add(
        "FIELDS",
        tokenvault::TokenField::ALL.map(tokenvault::TokenField::name),
    )?;
    Ok(())
}

/// The Zoho accounts server's token endpoint for an API domain (e.g.
/// "https://www.zohoapis.eu" → "https://accounts.zoho.eu/oauth/v2/token"), or None.
#[pyfunction]
fn zoho_token_url(api_domain: &str) -> Option<String> {
    tokenvault::oauth::zoho_token_url(api_domain)
}
