//! The CAR reader on arbitrary bytes: no panic, and every block it yields
//! matches its CID.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = billet_car::CarReader::new(data) {
        for block in reader.take(1000) {
            if let Ok(b) = block {
                assert!(billet_block::verify(b.block.cid(), b.block.data()).is_ok());
            }
        }
    }
});
