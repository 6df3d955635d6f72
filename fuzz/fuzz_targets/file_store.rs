//! The file store's format (`src/backend/file.rs`): the input is written to a file that
//! `FileBackend::open` parses; then every read a backend offers, a rewrite that changes
//! nothing (which must read back the same), and the store itself with the raw key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::backend::{Backend, FileBackend};
use tokenvault::{EncryptedStore, TokenStore, inspect};
use tokenvault_fuzz::{credential, scratch_path, write_private};

fuzz_target!(|data: &[u8]| {
    let path = scratch_path("store.tv");
    write_private(&path, data);
    let Ok(backend) = FileBackend::open(&path) else {
        return;
    };
    let header = backend
        .read_header()
        .expect("read the header of an opened file");
    let records = backend.list().expect("list the records of an opened file");
    for r in &records {
        assert_eq!(
            backend.get(&r.id).unwrap().as_ref(),
            Some(r),
            "get disagrees with list"
        );
        for (field, tag) in r.tags.iter() {
            let found = backend.find_by_tag(field, tag).unwrap();
            assert_eq!(found.as_ref(), Some(r), "find_by_tag disagrees with list");
        }
    }

    // Rewrite the file without changing the state: it must read back as it was.
    let rewrote = backend.transact(&mut |tx| {
        match (records.first(), &header) {
            (Some(r), _) => tx.put(r.clone())?,
            (None, Some(h)) => tx.put_header(h)?,
            (None, None) => {}
        }
        Ok(())
    });
    rewrote.expect("rewrite an opened file");
    let reopened = FileBackend::open(&path).expect("reopen a file the backend wrote");
    assert_eq!(
        reopened.read_header().unwrap(),
        header,
        "header changed by a rewrite"
    );
    assert_eq!(
        reopened.list().unwrap(),
        records,
        "records changed by a rewrite"
    );
    drop(reopened);

    let _ = inspect(&backend);
    if let Ok(store) = EncryptedStore::open(backend, &credential()) {
        let _ = store.get_tokens();
        let _ = store.verify();
    }
});
