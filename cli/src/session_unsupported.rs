//! `unlock` / `lock` where there is no Linux kernel keyring: nothing is cached, and `unlock`
//! says so (SECURITY.md §7).

use std::time::Duration;

use tokenvault::StoreKey;

use crate::CliError;

pub fn cached(_store_id: &str) -> Option<StoreKey> {
    None
}

pub fn remember(_store_id: &str, _key: &StoreKey, _ttl: Duration) -> Result<i32, CliError> {
    Err(CliError::failure(
        "unlock needs the Linux kernel keyring; on this system every command asks for the key",
    ))
}

pub fn forget(_store_id: &str) -> bool {
    false
}

pub fn leave_session_keyring() -> std::io::Result<()> {
    Ok(())
}
