//! The manifest and commit decoders on arbitrary bytes: a typed error or a
//! value that passes its own validation.
#![no_main]

use billet_records::{Commit, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert!(m.validate().is_ok());
        assert_eq!(m.to_block().expect("valid").data().as_ref(), data);
    }
    if let Ok(c) = Commit::decode(data) {
        assert_eq!(c.to_block().expect("valid").data().as_ref(), data);
    }
});
