//! The file-type sniffer walks untrusted structures: it must never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chat::safety::upload::detect(data);
});
